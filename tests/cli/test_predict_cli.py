"""predict on files, directories and globs, with one record per image and per-file errors; Predictor.predict on
one image or a list; URLs and missing files named as such."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.cli.predict import expand_inputs, main
from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ImageDecodeError
from dogbreed.core.images import open_image
from dogbreed.serving.predictor import BreedPrediction, Predictor

BREEDS = {"Affenpinscher", "Afghan hound", "Airedale terrier"}


def _jpeg_bytes(color=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """photos/a.jpg, photos/sub/b.png, photos/broken.jpg and header.jpg (truncated), photos/fake.png (text),
    photos/notes.txt (not an image extension)."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(_jpeg_bytes())
    Image.new("RGB", (33, 50), (20, 180, 40)).save(photos / "sub" / "b.png")
    (photos / "broken.jpg").write_bytes(_jpeg_bytes()[:-20])  # cut inside the image data: no end marker
    (photos / "header.jpg").write_bytes(_jpeg_bytes()[:100])  # cut inside the header
    (photos / "fake.png").write_text("not an image at all")
    (photos / "notes.txt").write_text("skipped: not an image extension")
    return photos


def _records(capsys, *argv: str) -> tuple[int, list[dict], str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_a_directory_with_broken_files_gives_a_record_per_image_and_exit_1(photo_dir, tiny_model_dir, capsys):
    status, records, err = _records(capsys, "--model-dir", str(tiny_model_dir), "--jsonl", "--top-k", "2",
                                    str(photo_dir))
    assert status == 1
    assert [r["image"] for r in records] == [str(photo_dir / n) for n in ("a.jpg", "broken.jpg", "fake.png",
                                                                          "header.jpg", "sub/b.png")]
    by_name = {Path(r["image"]).name: r for r in records}
    for good in ("a.jpg", "b.png"):
        # The random model has no abstention rule: no "confident": true, the answer says no rule is set.
        assert set(by_name[good]) == {"image", "confident", "abstention", "predictions"}
        assert by_name[good]["confident"] is None and by_name[good]["abstention"] == (
            "no abstention rule is set for this model: every image gets its best guesses, including images that are "
            "not dogs")
        assert [set(p) for p in by_name[good]["predictions"]] == [{"breed", "index", "probability"}] * 2
        assert {p["breed"] for p in by_name[good]["predictions"]} <= BREEDS
    assert set(by_name["broken.jpg"]) == {"image", "error"}
    # the strict decode, never padded; in our words, not PIL's (its count is of its buffer, not what is missing)
    assert by_name["broken.jpg"]["error"] == ("image is truncated (the file ends inside its image data): use the "
                                              "complete file")
    assert set(by_name["fake.png"]) == {"image", "error"}
    assert by_name["fake.png"]["error"] == "not an image (PIL cannot identify it: use JPEG, PNG or WebP)"
    assert by_name["header.jpg"]["error"] == "truncated file (it ends inside the image header)"
    assert err == "3 of 5 image(s) failed\n"


def test_globs_missing_files_and_urls_get_their_own_errors(photo_dir, tiny_model_dir, capsys):
    status, records, _ = _records(
        capsys, "--model-dir", str(tiny_model_dir), "--jsonl", str(photo_dir / "sub" / "*.png"),
        str(photo_dir / "missing.jpg"), "https://example.com/dog.jpg", str(photo_dir / "nothing*.jpg"))
    assert status == 1
    assert records[0]["image"] == str(photo_dir / "sub" / "b.png") and "predictions" in records[0]
    assert records[1] == {"image": str(photo_dir / "missing.jpg"), "error": "file not found"}
    assert records[2]["image"] == "https://example.com/dog.jpg"  # not mangled into https:/example.com
    assert records[2]["error"] == ("a URL: images are never downloaded; download it first (e.g. curl -o photo.jpg URL) "
                                   "and pass the file")
    assert records[3] == {"image": str(photo_dir / "nothing*.jpg"), "error": "no file matches this pattern"}


def test_json_is_one_array_and_all_good_images_exit_0(photo_dir, tiny_model_dir, capsys):
    status = main(["--model-dir", str(tiny_model_dir), "--json", str(photo_dir / "a.jpg"),
                   str(photo_dir / "sub" / "b.png")])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [r["image"] for r in payload] == [str(photo_dir / "a.jpg"), str(photo_dir / "sub" / "b.png")]
    assert all(len(r["predictions"]) == 3 for r in payload)  # the default top-k, the same as train's


def test_text_output_names_the_error(photo_dir, tiny_model_dir, capsys):
    status = main(["--model-dir", str(tiny_model_dir), str(photo_dir / "a.jpg"), str(photo_dir / "nope.png")])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0].startswith(f"{photo_dir / 'a.jpg'}: ") and lines[0].count("(") == 3
    assert lines[1] == f"{photo_dir / 'nope.png'}: error: file not found"


def test_directory_expansion_is_recursive_sorted_and_deduplicated(photo_dir):
    inputs = expand_inputs([str(photo_dir), str(photo_dir / "a.jpg")])
    assert [Path(i.name).name for i in inputs] == ["a.jpg", "broken.jpg", "fake.png", "header.jpg", "b.png"]
    (photo_dir / "._a.jpg").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork beside a.jpg
    (photo_dir / ".ipynb_checkpoints").mkdir()
    (photo_dir / ".ipynb_checkpoints" / "a-checkpoint.jpg").write_bytes(_jpeg_bytes())  # a copy, not a photo
    assert [Path(i.name).relative_to(photo_dir).as_posix() for i in expand_inputs([str(photo_dir)])] == [
        "a.jpg", "broken.jpg", "fake.png", "header.jpg", "sub/b.png"]
    hidden_root = photo_dir / ".cache" / "shots"  # a hidden folder above the one given does not hide it
    hidden_root.mkdir(parents=True)
    (hidden_root / "c.jpg").write_bytes(_jpeg_bytes())
    assert [Path(i.name).name for i in expand_inputs([str(hidden_root)])] == ["c.jpg"]
    empty = photo_dir / "empty"
    empty.mkdir()
    assert expand_inputs([str(empty)])[0].error == (
        "directory has no image files (.bmp, .gif, .jpeg, .jpg, .png, .ppm, .tif, .tiff, .webp)")


def test_predict_default_top_k_matches_train():
    from dogbreed.cli.predict import build_parser

    assert build_parser().parse_args(["--model-dir", "m", "x.jpg"]).top_k == TrainConfig().outputs.top_k == 3


def test_predictor_takes_one_path_bytes_or_image_or_a_list(tiny_model_dir, photo_dir):
    predictor = Predictor.from_model_dir(tiny_model_dir, device="cpu")
    path = photo_dir / "a.jpg"
    one = predictor.predict(str(path), k=2)  # a str is one path, not a sequence of characters
    assert len(one) == 2 and all(isinstance(p, BreedPrediction) for p in one)
    assert predictor.predict(path, k=2) == one
    assert predictor.predict(path.read_bytes(), k=2) == one
    assert predictor.predict(open_image(path), k=2) == one
    many = predictor.predict([str(path), path.read_bytes()], k=2)
    assert len(many) == 2
    for row in many:  # batched: the same answer up to float rounding
        assert [(p.breed, p.index) for p in row] == [(p.breed, p.index) for p in one]
        assert [p.probability for p in row] == pytest.approx([p.probability for p in one], abs=1e-6)
    assert predictor.predict([], k=2) == []


def test_decoding_names_urls_and_missing_files(tmp_path):
    with pytest.raises(ImageDecodeError) as refused:
        open_image("https://example.com/dog.jpg")
    assert str(refused.value) == ("https://example.com/dog.jpg is a URL; images are never downloaded: download it "
                                  "first and pass the file")
    with pytest.raises(ImageDecodeError) as refused:
        open_image(str(tmp_path / "missing.jpg"))
    assert str(refused.value) == f"image {tmp_path / 'missing.jpg'} not found: check the path"


def test_a_file_that_cannot_be_read_is_named_by_the_os_reason_alone(tmp_path):
    from dogbreed.cli.predict import read_image

    folder = tmp_path / "looks_like.jpg"
    folder.mkdir()
    with pytest.raises(ValueError) as refused:
        read_image(str(folder))
    assert str(refused.value) == "cannot read the file (Is a directory)"  # not "[Errno 21] Is a directory: '...'"
    with pytest.raises(ValueError) as refused:
        read_image(str(tmp_path / "gone.jpg"))
    assert str(refused.value) == "file not found"
