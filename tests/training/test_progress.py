"""Progress off a terminal: plain lines a log keeps (nohup, CI, Slurm), not a silent tqdm bar."""

import io

from vaegan.training.progress import Progress


def test_off_a_terminal_a_line_every_tenth_of_the_run_with_rate_eta_and_losses():
    stream = io.StringIO()
    progress = Progress(total=40, initial=0, batch_size=16, every_seconds=3600, stream=stream)
    for step in range(1, 41):
        progress.update(step, {"loss": 2.5, "mse_per_pixel": 0.125, "kl": 3.0, "d_loss": 1.25, "other": 9.0})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("step 4/40 (10%), ") and lines[-1].startswith("step 40/40 (100%)")
    assert "images/s, ETA " in lines[0] and lines[0].endswith("loss 2.5 mse_per_pixel 0.125 kl 3 d_loss 1.25")


def test_a_resumed_run_counts_from_where_it_stands_and_time_alone_also_prints():
    stream = io.StringIO()
    progress = Progress(total=1000, initial=900, batch_size=8, every_seconds=0.0, stream=stream)
    progress.update(901, {"loss": 1.0})
    assert stream.getvalue().startswith("step 901/1000 (90%)")
