"""The seeds' protocol numbers: exact values, and every bundle config that names one gets it."""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from medden.core import protocols

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bundles").glob("*/configs/*.json"))
PREFIX = "$medden.core.protocols."


def _references(config, path=""):
    """(config id, constant name) of every value that is exactly a protocols reference."""
    if isinstance(config, dict):
        for key, value in config.items():
            yield from _references(value, f"{path}#{key}" if path else key)
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _references(value, f"{path}#{index}")
    elif isinstance(config, str) and config.startswith(PREFIX) and config[len(PREFIX):].isidentifier():
        yield path, config[len(PREFIX):]


def _numbers(config):
    if isinstance(config, dict):
        for value in config.values():
            yield from _numbers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _numbers(value)
    elif isinstance(config, float):
        yield config


def test_levels_on_the_255_scale_are_exact_fractions():
    assert protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL == 20 / 255
    assert protocols.RECORRUPTION_GAUSSIAN_SIGMA_TRAIN == (3 / 255, 50 / 255)
    assert protocols.RECORRUPTION_EXTRA_SIGMA == (0.0, 25 / 255)
    assert protocols.N2N_GAUSSIAN_SIGMA_TRAIN == (0.0, 50 / 255)
    assert protocols.N2N_GAUSSIAN_SIGMA_TEST == 25 / 255


def test_every_name_is_exported_and_documented():
    source = Path(protocols.__file__).read_text()
    names = [name for name in vars(protocols) if name.isupper()]
    assert sorted(names) == sorted(protocols.__all__)
    for name in names:
        assert "#: " in source.split(f"\n{name}:")[0].rsplit("\n\n", 1)[-1], f"{name} needs a #: line"


@pytest.mark.parametrize("config", [c for c in CONFIGS if PREFIX in c.read_text()],
                         ids=lambda c: f"{c.parent.parent.name}/{c.name}")
def test_bundle_configs_resolve_protocol_references_to_the_constants(config):
    references = list(_references(json.loads(config.read_text())))
    assert references
    parser = ConfigParser()  # an overlay without imports is read over its bundle's train.json
    parser.read_config([str(config)] if "imports" in json.loads(config.read_text()) else
                       [str(config.parent / "train.json"), str(config)])
    for item, name in references:
        assert parser.get_parsed_content(item, instantiate=False) == getattr(protocols, name), item


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.parent.parent.name}/{c.name}")
def test_no_config_writes_a_rounded_test_sigma(config):
    # 20/255 was once written 0.0784 and 0.078431 beside the exact value; refer to the constant
    rounded = {round(level, digits) for level in (protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL,
                                                  protocols.N2N_GAUSSIAN_SIGMA_TEST) for digits in range(3, 17)}
    assert not rounded & set(_numbers(json.loads(config.read_text())))
