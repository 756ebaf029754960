"""Re-running the demo says that it reuses the generated data (and regenerates it for another seed)."""

from __future__ import annotations

import logging

from dogbreed.data.demo import generate_demo_dataset


def test_a_second_demo_run_says_it_reuses_the_data(tmp_path, caplog):
    root = tmp_path / "demo_data"
    with caplog.at_level(logging.INFO, logger="dogbreed.data.demo"):
        generate_demo_dataset(root, seed=7)
        generate_demo_dataset(root, seed=7)
        generate_demo_dataset(root, seed=8)
    assert [r.getMessage() for r in caplog.records] == [
        f"generating the demo data in {root} (seed 7)",
        f"reusing the demo data in {root} (seed 7); delete that folder to generate it again",
        f"generating the demo data in {root} (seed 8)",
    ]
