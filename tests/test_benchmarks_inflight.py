"""The inflight benchmark's checks: crossing detection and memory per job in flight."""

import io

from PIL import Image

from benchmarks.inflight import Sample, is_crossed, per_job


def png(rgb: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), rgb).save(out, format="PNG")
    return out.getvalue()


def test_a_picture_of_its_own_colour_that_the_server_serves_is_not_crossed() -> None:
    assert not is_crossed(0x102030, png((0x10, 0x20, 0x30)), png((0x10, 0x20, 0x30)))


def test_another_jobs_colour_or_other_bytes_than_served_is_crossed() -> None:
    assert is_crossed(0x102030, png((0x10, 0x20, 0x31)), png((0x10, 0x20, 0x31)))
    assert is_crossed(0x102030, png((0x10, 0x20, 0x30)), png((0x10, 0x20, 0x31)))


def test_memory_per_job_is_the_peak_over_baseline_per_job_in_flight_at_that_peak() -> None:
    baseline = Sample(0, (1,), 7, rss=1000, traced=0)
    samples = [Sample(10, (2,), 17, rss=3000, traced=0), Sample(20, (2,), 27, rss=5000, traced=0),
               Sample(0, (2,), 7, rss=9000, traced=0)]  # no job in flight: not a peak of jobs in flight
    assert per_job(samples, baseline, "rss") == 200.0
