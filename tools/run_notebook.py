"""Refresh the committed outputs of notebooks/train_and_deploy.ipynb from a run against a local moto server.

    .venv/bin/python tools/run_notebook.py

The notebook runs top to bottom exactly as tests/sagemaker/test_notebook.py runs it (a local moto server, the fake role,
generated test data, canned endpoint answers), then the parameters cell is put back as committed (every switch
off) while every cell keeps the outputs of that run. Nothing is sent to AWS: the run refuses to start when
``AWS_ENDPOINT_URL`` would point anywhere but the local server it starts itself.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    import nbformat

    from tests.helpers.moto_aws import FAKE_ROLE, moto_endpoint, seed_endpoint_results
    from tests.sagemaker.test_notebook import (
        BUCKET,
        CANNED,
        MACHINE_PATHS,
        NOTEBOOK,
        _execute,
        _outputs_text,
        _test_data,
    )

    committed = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in committed.cells if "parameters" in c.metadata.get("tags", []))
    committed_source = parameters.source
    with tempfile.TemporaryDirectory(prefix="dogbreed-notebook-") as scratch:
        work = Path(scratch)
        data = _test_data(work)
        with moto_endpoint(work / "moto_recording.jsonl") as url:
            seed_endpoint_results(url, [CANNED] * 3)
            nb = nbformat.read(NOTEBOOK, as_version=4)
            cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
            injected = {"ROLE": FAKE_ROLE, "BUCKET": BUCKET, "DATA_DIR": str(data), "WORK_DIR": str(work / "nb")}
            cell.source += "\n# injected by tools/run_notebook.py\n" + "\n".join(
                f"{k} = {v!r}" for k, v in injected.items())
            print("running the notebook against", url, flush=True)
            _execute(nb)
        cell.source = committed_source
        text = _outputs_text(nb)
        leaked = sorted(set(MACHINE_PATHS.findall(text))) + ([scratch] if scratch in text else [])
        if leaked:
            for match in MACHINE_PATHS.finditer(text):
                print("  ...", text[max(0, match.start() - 150):match.end() + 80].replace("\n", " | "), file=sys.stderr)
            print(f"not written: the outputs name machine paths {leaked}", file=sys.stderr)
            return 1
    for code in nb.cells:
        code.metadata.pop("execution", None)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK.relative_to(REPO)} ({NOTEBOOK.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
