"""Data refusals no other test quoted, each compared whole (issue 24: every refusal read back): folders that are
not there or hold nothing, a damaged prepare manifest, download sources and an image no sibling can replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogbreed.core.errors import ConfigError, DataError, DownloadError


def _refusal(error, call, *args, **kwargs) -> str:
    with pytest.raises(error) as refused:
        call(*args, **kwargs)
    return str(refused.value)


def test_no_data_option_at_all_lists_the_three_ways_to_get_data():
    from dogbreed.config.sections import DataOptions
    from dogbreed.data.sources import resolve_splits

    assert _refusal(DataError, resolve_splits, DataOptions(), seed=0) == (
        "no data: pass --data-dir DIR (a folder with train/ valid/ test/ of <breed>/<images>), or --download to "
        "fetch dogImages into ./data, or --demo to train on generated images")


def test_a_dataset_url_that_is_not_http_is_refused_before_anything_is_written(tmp_path):
    from dogbreed.data.sources import download_dataset

    for url in ("file:///data/dogImages.zip", "ftp://example.com/d.zip", "s3://bucket/d.zip"):
        assert _refusal(DownloadError, download_dataset, url, tmp_path / "data") == (
            f"--dataset-url {url}: only http:// and https:// URLs are downloaded; for a local zip, unpack it "
            "yourself and pass --data-dir")
    assert not (tmp_path / "data").exists()


def _serve_once(body: bytes):
    """A local HTTP server answering every GET with ``body`` (what a wrong --dataset-url returns)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_download_that_is_not_a_zip_or_holds_no_train_folder(tmp_path):
    import io
    import zipfile

    from dogbreed.data.sources import download_dataset

    server = _serve_once(b"<html>not found</html>")
    try:
        url = f"http://127.0.0.1:{server.server_port}/dogImages.zip"
        assert _refusal(DownloadError, download_dataset, url, tmp_path / "a") == (
            f"{url} did not return a valid zip file (File is not a zip file)")
        assert list((tmp_path / "a").iterdir()) == []  # the partial download is removed
    finally:
        server.shutdown()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/001.Affenpinscher/a.jpg", b"x")
    server = _serve_once(buffer.getvalue())
    try:
        url = f"http://127.0.0.1:{server.server_port}/other.zip"
        assert _refusal(DownloadError, download_dataset, url, tmp_path / "b") == (
            f"the archive from {url} has no train/ folder (unpacked into {tmp_path / 'b'})")
    finally:
        server.shutdown()


def test_a_split_folder_that_is_missing_or_holds_no_classes(tmp_path):
    from dogbreed.data.splits import list_class_dirs

    assert _refusal(DataError, list_class_dirs, tmp_path / "valid") == (
        f"split dir {tmp_path / 'valid'} does not exist: check the path or the channel name")
    (tmp_path / "valid" / ".ipynb_checkpoints").mkdir(parents=True)  # hidden folders are not classes
    assert _refusal(DataError, list_class_dirs, tmp_path / "valid") == (
        f"split {tmp_path / 'valid'} has no class folders: expected {tmp_path / 'valid'}/<class name>/<images>")


def test_an_ood_folder_that_is_missing_or_holds_one_image(tmp_path):
    from PIL import Image

    from dogbreed.data.ood import folder_images

    assert _refusal(DataError, folder_images, tmp_path / "cats") == (
        f"--ood-dir {tmp_path / 'cats'}: no such folder. Give a folder of images that are not dogs")
    (tmp_path / "cats" / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "cats" / "a" / "one.png")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    assert _refusal(DataError, folder_images, tmp_path / "cats") == (
        f"--ood-dir {tmp_path / 'cats'} holds 1 image(s): it needs at least 2 (one to choose the abstention score, "
        "one to measure it); a few dozen give a meaningful AUROC")
    Image.new("RGB", (8, 8)).save(tmp_path / "cats" / "two.JPG")
    assert folder_images(tmp_path / "cats") == [tmp_path / "cats" / "a" / "one.png", tmp_path / "cats" / "two.JPG"]


@pytest.mark.parametrize("valid, test, shown", [(0.7, 0.3, "0.7 and --test-pct 0.3"),
                                                 (0.5, 0.6, "0.5 and --test-pct 0.6")])
def test_split_fractions_that_leave_nothing_to_train_on(tmp_path, valid, test, shown):
    from dogbreed.data.auto_split import AutoSplit, resolve_fractions
    from dogbreed.data.splits import SplitDirs

    assert _refusal(ConfigError, resolve_fractions, SplitDirs(train=tmp_path), AutoSplit(valid, test)) == (
        f"--valid-pct {shown} leave nothing to train on: together they must stay below 1 (e.g. 0.2 and 0.1)")
    fractions = resolve_fractions(SplitDirs(train=tmp_path), AutoSplit(0.7, 0.29))  # just below 1
    assert (fractions.valid, fractions.test) == (0.7, 0.29)


@pytest.mark.parametrize("content, reason", [
    ('{"format": 1}', "no 'files' table"),
    ('{"files": []}', "no 'files' table"),
    ("{", "Expecting property name enclosed in double quotes at line 1, column 2"),
    (b'{"files": {}} \xff', "not UTF-8 text: invalid start byte at byte 14"),
])
def test_a_damaged_prepare_manifest_says_to_prepare_again(tmp_path, content, reason):
    from dogbreed.data.prepare import read_manifest

    (tmp_path / "prepared_manifest.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    assert _refusal(DataError, read_manifest, tmp_path) == (
        f"{tmp_path / 'prepared_manifest.json'} is damaged ({reason}): delete {tmp_path} and prepare again")
    (tmp_path / "prepared_manifest.json").write_text(json.dumps({"files": {}}))
    assert read_manifest(tmp_path) == {"files": {}}
    assert read_manifest(tmp_path / "elsewhere") is None  # no manifest: not a prepared dataset yet


def test_prepare_into_a_file_is_refused(tiny_tree, tmp_path):
    from dogbreed.data.prepare import prepare_dataset

    (tmp_path / "out").write_text("a file")
    assert _refusal(DataError, prepare_dataset, tiny_tree, tmp_path / "out") == (
        f"--output {tmp_path / 'out'} is a file: choose a folder")


def test_an_image_no_sibling_of_its_class_can_replace_is_an_error_naming_it(tmp_path):
    from dogbreed.data.datamodule import ImageFileDataset

    broken = [tmp_path / name for name in ("a.jpg", "b.jpg")]
    for path in broken:
        path.write_bytes(b"\xff\xd8\xff not a whole jpeg")
    dataset = ImageFileDataset([(broken[0], 0), (broken[1], 0), (Path("other.jpg"), 1)], transform=lambda x: x,
                               skip_bad_images=True)
    assert _refusal(DataError, dataset.__getitem__, 0) == (
        f"no image of the class of {broken[0]} can be decoded: check that class folder")
    assert dataset.skipped.value == 1


def test_a_split_whose_every_image_is_skipped_as_unreadable(tmp_path):
    from PIL import Image

    from dogbreed.data.splits import check_splits

    for split in ("train", "valid"):
        for breed in ("001.A", "002.B"):
            folder = tmp_path / split / breed
            folder.mkdir(parents=True)
            if split == "train":
                Image.new("RGB", (8, 8), (60 if breed == "001.A" else 200, 0, 0)).save(folder / "ok.png")
            else:
                (folder / "bad.jpg").write_bytes(b"not a jpeg")
    paths = {"train": tmp_path / "train", "valid": tmp_path / "valid"}
    with pytest.raises(DataError) as refused:
        check_splits(paths, skip_bad_images=True)
    assert str(refused.value) == f"split {tmp_path / 'valid'} has no readable images: add images to it"
