"""The output guard, one rule for every writer of a folder of outputs: output and input lie apart."""

import pytest

from medden.io.files import check_output_dir


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "scan.nii.gz").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("input_name", ["in", "in/scan.nii.gz"])  # a file's folder is its input folder
def test_output_equal_to_or_inside_the_input_folder_is_refused(tree, input_name):
    for out in ("in", "in/sub", "in/out/deeper"):
        with pytest.raises(ValueError, match="lies inside the input folder.*output_dir must differ from input_dir"):
            check_output_dir(tree / input_name, tree / out)
    assert not (tree / "in" / "out").exists()  # refused before anything is made


def test_input_inside_the_output_is_refused(tree):
    for input_name in ("in", "in/sub", "in/scan.nii.gz"):
        with pytest.raises(ValueError, match="lies inside output"):
            check_output_dir(tree / input_name, tree)


def test_a_separate_folder_is_accepted_and_made_on_request(tree):
    assert check_output_dir(tree / "in", tree / "out") == tree / "out" and not (tree / "out").exists()
    assert check_output_dir(tree / "in" / "scan.nii.gz", tree / "out", create=True).is_dir()
    assert check_output_dir(tree / "in" / "sub", tree / "in_sibling") == tree / "in_sibling"


def test_a_missing_input_or_a_file_as_output_is_refused(tree):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_dir(tree / "missing", tree / "out")
    (tree / "taken").write_text("a file")
    with pytest.raises(NotADirectoryError, match="exists and is a file"):
        check_output_dir(tree / "in", tree / "taken", create=True)


def test_symlinked_paths_are_compared_resolved(tree):
    (tree / "link").symlink_to(tree / "in")
    with pytest.raises(ValueError, match="lies inside the input folder"):
        check_output_dir(tree / "in", tree / "link" / "out")
