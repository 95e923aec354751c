"""How fast a step runs, never what it computes: per-device settings (`train.speed`), the CPU kernels behind
them (gemm_conv, fast_dropout) and the helpers that apply them."""

from vaegan.speed.settings import (SpeedSettings, align_optimizer_state, autocast, apply_speed_settings,
                                   configure_process, grouped_member_layers, inference_settings, recorded_speed, resolve_speed, run_speed,
                                   set_host_memory_reuse, speed_defaults, speed_record, speed_request,
                                   to_input_layout)

__all__ = ["SpeedSettings", "align_optimizer_state", "autocast", "apply_speed_settings", "configure_process",
           "grouped_member_layers", "inference_settings", "recorded_speed", "resolve_speed", "run_speed", "set_host_memory_reuse",
           "speed_defaults", "speed_record", "speed_request", "to_input_layout"]
