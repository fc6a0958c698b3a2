"""The pure parts of a local cluster: each member's settings from ports and names (both
engines), the state file with and without members, and the errors of bad sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_es.engines import MemberInfo, NodeConfig, NodeInfo, cluster_layout, engine_spec
from splade_es.engines.cluster_layout import INITIAL_MANAGERS_SETTING, cluster_startup_timeout
from splade_es.engines.spec import node_settings

HTTP = [9201, 9202, 9203]
TRANSPORT = [9301, 9302, 9303]


def three(engine: str, processors: int | None = 1):
    return cluster_layout(
        engine_spec(engine),
        3,
        http_ports=HTTP,
        transport_ports=TRANSPORT,
        cluster_name="dev",
        processors=processors,
    )


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_one_node_is_the_single_node_of_before(engine):
    spec = engine_spec(engine)
    layout = cluster_layout(
        spec, 1, http_ports=[9200], transport_ports=[9300], cluster_name="", processors=None
    )
    (member,) = layout.members
    assert member.name == "node-1" and member.url == "http://127.0.0.1:9200"
    args = member.arguments(data="/w/data", logs="/w/logs")
    expected = node_settings(
        spec, http_port=9200, transport_port=9300, data="/w/data", logs="/w/logs"
    )
    assert args == expected
    assert "-Ediscovery.type=single-node" in args


@pytest.mark.parametrize(
    ("engine", "managers"),
    [
        ("elasticsearch", "cluster.initial_master_nodes"),
        ("opensearch", "cluster.initial_cluster_manager_nodes"),
    ],
)
def test_three_members_find_each_other(engine, managers):
    layout = three(engine)
    assert INITIAL_MANAGERS_SETTING[engine] == managers
    assert [m.name for m in layout.members] == ["node-1", "node-2", "node-3"]
    for member, http, transport in zip(layout.members, HTTP, TRANSPORT, strict=True):
        settings = dict(member.settings)
        assert "discovery.type" not in settings
        assert settings["cluster.name"] == "dev"
        assert settings["node.name"] == member.name
        assert settings["discovery.seed_hosts"] == "127.0.0.1:9301,127.0.0.1:9302,127.0.0.1:9303"
        assert settings[managers] == "node-1,node-2,node-3"
        assert (settings["http.port"], settings["transport.port"]) == (str(http), str(transport))
        assert settings["network.host"] == "127.0.0.1"
        assert settings["cluster.routing.allocation.disk.threshold_enabled"] == "false"
        assert settings["node.processors"] == "1"
        assert len(member.settings) == len(settings)  # no key twice
    other = {"elasticsearch": "opensearch", "opensearch": "elasticsearch"}[engine]
    assert INITIAL_MANAGERS_SETTING[other] not in dict(layout.members[0].settings)


def test_paths_come_last_and_processors_are_optional():
    member = three("elasticsearch", processors=None).members[1]
    args = member.arguments(data="/n2/data", logs="/n2/logs")
    assert args[-2:] == ["-Epath.data=/n2/data", "-Epath.logs=/n2/logs"]
    assert not any(a.startswith("-Enode.processors=") for a in args)
    assert "-Expack.security.enabled=false" in args


def test_the_startup_timeout_grows_with_the_nodes():
    assert cluster_startup_timeout(240.0, 1) == 240.0
    assert cluster_startup_timeout(240.0, 3) == 480.0


@pytest.mark.parametrize(
    ("nodes", "http", "transport", "name", "processors", "message"),
    [
        (0, [], [], "dev", None, r"nodes=0: expected an integer >= 1"),
        (True, [1], [2], "dev", None, r"nodes=True: expected an integer >= 1"),
        (2, [1, 2], [3], "dev", None, r"1 transport port\(s\) \[3\] for 2 node\(s\)"),
        (2, [1], [3, 4], "dev", None, r"1 http port\(s\) \[1\] for 2 node\(s\)"),
        (2, [1, 2], [2, 3], "dev", None, r"Port\(s\) \[2\] given twice"),
        (3, HTTP, TRANSPORT, " ", None, r"cluster_name=' ': a cluster of 3 nodes needs a name"),
        (3, HTTP, TRANSPORT, "dev", 0, r"processors=0: expected an integer >= 1 or None"),
    ],
)
def test_bad_layouts_name_the_value(nodes, http, transport, name, processors, message):
    with pytest.raises(ValueError, match=message):
        cluster_layout(
            engine_spec("opensearch"),
            nodes,
            http_ports=http,
            transport_ports=transport,
            cluster_name=name,
            processors=processors,
        )


def test_node_config_refuses_bad_sizes_and_a_secured_cluster(tmp_path):
    with pytest.raises(ValueError, match=r"nodes=0: expected an integer >= 1"):
        NodeConfig("opensearch", tmp_path / "s.json", tmp_path, nodes=0)
    with pytest.raises(ValueError, match=r"secured cluster of 3 nodes is not supported"):
        NodeConfig("opensearch", tmp_path / "s.json", tmp_path, secure=True, nodes=3)
    assert NodeConfig("opensearch", tmp_path / "s.json", tmp_path).nodes == 1


def _info(**extra) -> NodeInfo:
    return NodeInfo(
        engine="opensearch",
        version="2.19.6",
        url="http://127.0.0.1:9201",
        pid=11,
        work_dir="/tmp/splade-es-opensearch-a",
        log_file="/tmp/splade-es-opensearch-a/console.log",
        java_home="/jdk",
        java_feature=21,
        start_seconds=3.0,
        **extra,
    )


def test_a_single_node_state_file_is_unchanged_and_an_old_one_still_reads():
    single = _info()
    assert "members" not in json.loads(single.to_json())
    assert NodeInfo.from_json(single.to_json()) == single
    (only,) = single.nodes
    assert (only.name, only.pid, only.url) == ("node-1", 11, "http://127.0.0.1:9201")


def test_a_cluster_state_file_round_trips_every_member():
    members = tuple(
        MemberInfo(f"node-{i}", 10 + i, f"http://127.0.0.1:920{i}", f"/w{i}", f"/w{i}/c.log")
        for i in (1, 2, 3)
    )
    info = _info(members=members)
    text = info.to_json()
    assert [m["name"] for m in json.loads(text)["members"]] == ["node-1", "node-2", "node-3"]
    assert NodeInfo.from_json(text) == info and info.nodes == members


def test_a_foreign_state_file_is_named(tmp_path: Path):
    from splade_es.engines.node_state import NodeError, read_state

    state = tmp_path / "state.json"
    state.write_text('{"engine": "opensearch"}')
    with pytest.raises(NodeError, match=r"state\.json is not a node state file"):
        read_state(state)
