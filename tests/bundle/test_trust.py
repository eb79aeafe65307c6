"""Bundles are code: a plain name means a shipped bundle only, and a folder medden does not ship is
refused, before any of its configs is parsed, unless the caller says it trusts it."""

import json
import shutil

import pytest
from helpers import REPO, copy_bundle, write_ct_series

from medden.apps.cli import main
from medden.apps.serve.bundles import BundleCatalogue
from medden.bundle import UntrustedBundleError, bundle_config, is_shipped, load_bundle, resolve_bundle
from medden.bundle.layout import INFERENCE_CONFIG

SHIPPED = REPO / "bundles" / "recorruption_ixi_bernoulli"


def _hostile_bundle(folder, marker):
    """A bundle folder whose inference.json writes ``marker`` when MONAI evaluates it, both ways the
    audit used: an expression and a ``_target_``."""
    copy_bundle("recorruption_ixi_bernoulli", folder)
    config = json.loads((folder / INFERENCE_CONFIG).read_text())
    config["pwned"] = f"$__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    config["network"] = {"_target_": "pathlib.Path.touch", "self": f"$__import__('pathlib').Path({str(marker)!r})"}
    config["inferer"] = f"$__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    (folder / INFERENCE_CONFIG).write_text(json.dumps(config))
    return folder


def test_a_plain_name_is_a_shipped_bundle_even_where_a_folder_of_that_name_lies(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    _hostile_bundle(tmp_path / "recorruption_ixi_bernoulli", marker)
    monkeypatch.chdir(tmp_path)
    assert resolve_bundle("recorruption_ixi_bernoulli") == SHIPPED
    bundle = load_bundle("recorruption_ixi_bernoulli", device="cpu")
    assert bundle.root == SHIPPED and not marker.exists()


def test_a_folder_medden_does_not_ship_is_refused_before_its_config_is_parsed(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    hostile = _hostile_bundle(tmp_path / "mine", marker)
    for call in (lambda: load_bundle(hostile, device="cpu"), lambda: bundle_config(hostile),
                 lambda: resolve_bundle(str(hostile))):
        with pytest.raises(UntrustedBundleError, match=r"not a bundle medden ships.*runs the Python code.*"
                                                       r"--trust-bundle"):
            call()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"unknown bundle 'mine'.*A folder 'mine' exists here.*\./mine"):
        resolve_bundle("mine")
    assert not marker.exists()
    with pytest.raises(Exception):  # trusted, it does run: trust is what the flag says
        load_bundle("./mine", device="cpu", trust=True)
    assert marker.exists()


def test_shipped_bundles_by_path_need_no_trust_and_links_out_of_them_do(tmp_path):
    assert is_shipped(SHIPPED) and resolve_bundle(str(SHIPPED)) == SHIPPED
    assert not is_shipped(copy_bundle("recorruption_ixi_bernoulli", tmp_path / "copy"))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "copy")
    with pytest.raises(UntrustedBundleError):
        resolve_bundle(link)
    assert resolve_bundle(link, trust=True) == link.absolute()


def test_cli_refuses_an_untrusted_bundle_folder_and_runs_a_trusted_one(tmp_path, capsys):
    write_ct_series(tmp_path / "in", n=2)
    marker = tmp_path / "marker"
    hostile = _hostile_bundle(tmp_path / "hostile", marker)
    for command in (["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", str(hostile)],
                    ["export", str(hostile)], ["demo", "--output", str(tmp_path / "demo"), "--bundle", str(hostile)],
                    ["serve", "--bundles", str(hostile)]):
        assert main(command) == 1
        assert "refusing to load the bundle folder" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()
    mine = copy_bundle("recorruption_ixi_bernoulli", tmp_path / "mine")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", str(mine), "--trust-bundle",
                 "--device", "cpu"]) == 0


def test_serve_offers_only_shipped_or_trusted_bundles(tmp_path):
    mine = copy_bundle("recorruption_ixi_bernoulli", tmp_path / "mine")
    with pytest.raises(UntrustedBundleError):
        BundleCatalogue([str(mine)])
    catalogue = BundleCatalogue(["recorruption_ixi_bernoulli", str(mine)], device="cpu", trust=True)
    assert catalogue.names == ["recorruption_ixi_bernoulli", "mine"]
    assert catalogue.get("mine").root == mine


def test_a_refused_checkpoint_says_why(tmp_path, capsys):
    import os

    import torch

    class Hostile:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    mine = copy_bundle("recorruption_ixi_bernoulli", tmp_path / "mine")
    torch.save({"weight": Hostile()}, mine / "models" / "model.pt")
    write_ct_series(tmp_path / "in", n=1)
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", str(mine), "--trust-bundle"]) == 1
    err = capsys.readouterr().err
    assert "refusing to load checkpoint" in err and "unsupported GLOBAL" in err and "system" in err
    assert "Failed to evaluate ConfigExpression" not in err
    shutil.rmtree(mine)
