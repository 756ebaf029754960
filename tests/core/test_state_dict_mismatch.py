"""torch's load_state_dict refusal on one line, for every message that quotes it (artifact, import, int8, weights)."""

from __future__ import annotations

from dogbreed.core.errors import state_dict_mismatch


def test_the_header_and_the_tabs_go_and_the_reasons_join():
    exc = RuntimeError('Error(s) in loading state_dict for ResNet:\n\tMissing key(s) in state_dict: "a.w". \n\t'
                       'Unexpected key(s) in state_dict: "b.w". ')
    assert state_dict_mismatch(exc) == 'Missing key(s) in state_dict: "a.w"; Unexpected key(s) in state_dict: "b.w"'


def test_a_message_without_torchs_layout_is_kept_and_an_empty_one_is_named():
    assert state_dict_mismatch(RuntimeError("  shapes differ ")) == "shapes differ"
    assert state_dict_mismatch(RuntimeError()) == "RuntimeError"


def test_up_to_300_characters_are_kept_whole_and_longer_ones_cut_with_an_ellipsis():
    exact = "x" * 300
    assert state_dict_mismatch(RuntimeError(f"header:\n\t{exact}")) == exact
    cut = state_dict_mismatch(RuntimeError(f"header:\n\t{exact}y"))
    assert cut == "x" * 297 + "..."
