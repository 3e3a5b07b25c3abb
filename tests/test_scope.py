"""Where to look: options, then channel defaults, then configured defaults."""

import pytest

from bot.diagnosis.resolve import ScopeMissing, pick_scope


def scope(**kw):
    base = dict(
        workspace=None,
        namespace=None,
        channel_workspace=None,
        channel_namespace=None,
        configured_workspace=None,
        configured_namespaces=[],
        region=None,
    )
    base.update(kw)
    return pick_scope(**base)


def test_options_beat_channel_defaults_beat_configuration():
    s = scope(
        workspace="w1",
        channel_workspace="w2",
        configured_workspace="w3",
        namespace="n1",
        channel_namespace="n2",
        configured_namespaces=["n3", "n4"],
    )
    assert (s.workspace, s.namespaces) == ("w1", ["n1"])
    s = scope(
        channel_workspace="w2",
        configured_workspace="w3",
        channel_namespace="n2",
        configured_namespaces=["n3"],
    )
    assert (s.workspace, s.namespaces) == ("w2", ["n2"])
    s = scope(configured_workspace="w3", configured_namespaces=["n3", "n4", "n3"])
    assert (s.workspace, s.namespaces) == ("w3", ["n3", "n4"])


def test_missing_scope_says_how_to_fix_it():
    with pytest.raises(ScopeMissing) as e:
        scope(configured_namespaces=["n"])
    assert "workspace" in e.value.user_message and "/flinkdiag defaults" in e.value.user_message
    with pytest.raises(ScopeMissing) as e:
        scope(configured_workspace="w")
    assert "namespace" in e.value.user_message
