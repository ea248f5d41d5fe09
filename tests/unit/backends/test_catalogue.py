"""The catalogue: built-in backends, generated snapshots, and the TOML file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from qruntime.backends import BUILTIN_DEVICES, generate_snapshot, load_catalogue
from qruntime.errors import BackendNotFoundError, InputValueError

FALCON_27_EDGES = {
    (0, 1), (1, 2), (1, 4), (2, 3), (3, 5), (4, 7), (5, 8), (6, 7), (7, 10), (8, 9), (8, 11),
    (10, 12), (11, 14), (12, 13), (12, 15), (13, 14), (14, 16), (15, 18), (16, 19), (17, 18),
    (18, 21), (19, 20), (19, 22), (21, 23), (22, 25), (23, 24), (24, 25), (25, 26),
}  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "backends.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def values(records: list[dict[str, Any]]) -> dict[str, float]:
    return {r["name"]: r["value"] for r in records}


BUILT_IN = ["aer_simulator", "fake_5q", "fake_27q"]
DEFAULT_SNAPSHOTS = ["fake_sherbrooke", "fake_torino", "fake_fez"]
needs_ibm_runtime = pytest.mark.skipif(
    importlib.util.find_spec("qiskit_ibm_runtime") is None, reason="needs qiskit-ibm-runtime"
)


def test_builtin_catalogue_offers_a_simulator_and_two_devices() -> None:
    catalogue = load_catalogue()
    assert catalogue.names()[:3] == BUILT_IN
    assert [e.name for e in catalogue] == catalogue.names()
    aer, small, large = (catalogue.get(n).spec for n in BUILT_IN)
    assert (aer.kind, aer.simulator, aer.lanes) == ("aer", True, 2)
    assert (small.kind, small.simulator, small.lanes, small.num_qubits) == ("device", False, 1, 5)
    assert (large.simulator, large.lanes, large.num_qubits) == (False, 1, 27)


@needs_ibm_runtime
def test_default_catalogue_adds_an_eagle_and_two_herons_as_shipped() -> None:
    catalogue = load_catalogue()
    assert catalogue.names() == BUILT_IN + DEFAULT_SNAPSHOTS
    assert catalogue.unavailable == {}
    eagle, heron, heron2 = (catalogue.get(n) for n in DEFAULT_SNAPSHOTS)
    assert (eagle.spec.num_qubits, heron.spec.num_qubits, heron2.spec.num_qubits) == (127, 133, 156)
    for entry in (eagle, heron, heron2):
        assert (entry.spec.kind, entry.spec.simulator, entry.spec.lanes) == ("device", False, 1)
        assert entry.target.num_qubits == entry.spec.num_qubits
    # The gates each chip ships with: echoed cross-resonance on Eagle, CZ on Heron.
    assert "ecr" in eagle.configuration()["basis_gates"]
    assert "cz" in heron.configuration()["basis_gates"]
    assert eagle.configuration()["processor_type"]["family"] == "Eagle"
    assert heron.configuration()["processor_type"]["family"] == "Heron"
    assert "Heron r1, 133 qubits" in heron.spec.description


def test_unknown_backend_is_refused_with_the_known_names() -> None:
    with pytest.raises(BackendNotFoundError, match="aer_simulator, fake_5q, fake_27q"):
        load_catalogue().get("ibm_brisbane")


def test_without_qiskit_ibm_runtime_the_builtins_stay_and_snapshots_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "qiskit_ibm_runtime", None)
    catalogue = load_catalogue()
    assert catalogue.names() == BUILT_IN
    assert sorted(catalogue.unavailable) == sorted(DEFAULT_SNAPSHOTS)
    with pytest.raises(BackendNotFoundError, match="pip install qiskit-ibm-runtime"):
        catalogue.get("fake_torino")


def test_fake_27q_has_the_falcon_heavy_hex_couplings() -> None:
    coupling = load_catalogue().get("fake_27q").configuration()["coupling_map"]
    assert {tuple(sorted(edge)) for edge in coupling} == FALCON_27_EDGES
    assert len(coupling) == 56  # both directions


def test_generated_snapshot_is_deterministic_and_realistic() -> None:
    layout = BUILTIN_DEVICES["fake_27q"]
    first = generate_snapshot("fake_27q", layout)
    assert generate_snapshot("fake_27q", layout) == first
    assert generate_snapshot("other", layout) != first
    _, properties = first
    for records in properties["qubits"]:
        v = values(records)
        assert 60 <= v["T1"] <= 180
        assert 40 <= v["T2"] <= min(160, 2 * v["T1"])
        assert 4.8 <= v["frequency"] <= 5.3
        assert 0.008 <= v["readout_error"] <= 0.04
        assert v["prob_meas0_prep1"] != v["prob_meas1_prep0"]
        assert 700 <= v["readout_length"] <= 5000
    for gate in properties["gates"]:
        v = values(gate["parameters"])
        if gate["gate"] in ("sx", "x", "id"):
            assert 1e-4 <= v["gate_error"] <= 6e-4
        if gate["gate"] == "cx":
            assert 5e-3 <= v["gate_error"] <= 2.1e-2
            assert 250 <= v["gate_length"] <= 640


def test_documents_are_cached_and_handed_out_as_copies() -> None:
    entry = load_catalogue().get("fake_5q")
    configuration = entry.configuration()
    configuration["n_qubits"] = 99
    assert entry.configuration()["n_qubits"] == 5
    assert entry.target is entry.target


def test_ideal_simulator_has_no_properties_and_a_status() -> None:
    entry = load_catalogue().get("aer_simulator")
    assert entry.properties() is None
    assert entry.defaults() is None
    assert entry.status(pending_jobs=3) == {
        "backend_name": "aer_simulator",
        "backend_version": "1.0.0",
        "operational": True,
        "pending_jobs": 3,
        "status_msg": "active",
    }
    device = load_catalogue().get("fake_5q")
    defaults = device.defaults()
    assert defaults is not None
    assert len(defaults["qubit_freq_est"]) == 5


def test_toml_overrides_and_adds_backends_keeping_the_builtins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [defaults]
        replace = false
        [backends.aer_simulator]
        kind = "aer"
        lanes = 4
        [backends.aer_mps]
        kind = "aer"
        method = "matrix_product_state"
        """,
    )
    catalogue = load_catalogue(path)
    assert catalogue.names() == [*load_catalogue().names(), "aer_mps"]
    assert catalogue.get("aer_simulator").spec.lanes == 4
    assert catalogue.get("aer_mps").spec.num_qubits == 63


def test_toml_replace_drops_the_builtins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [defaults]
        replace = true
        [backends.small]
        kind = "device"
        device = "fake_5q"
        """,
    )
    catalogue = load_catalogue(path)
    assert catalogue.names() == ["small"]
    assert catalogue.get("small").configuration()["backend_name"] == "small"


def test_toml_loads_a_labs_own_snapshot_files(tmp_path: Path) -> None:
    configuration, properties = generate_snapshot("lab", BUILTIN_DEVICES["fake_5q"])
    (tmp_path / "conf.json").write_text(json.dumps(configuration))
    (tmp_path / "props.json").write_text(json.dumps(properties))
    path = write(
        tmp_path,
        """
        [backends.lab_device]
        kind = "device"
        snapshot_configuration = "conf.json"
        snapshot_properties = "props.json"
        """,
    )
    entry = load_catalogue(path).get("lab_device")
    assert entry.spec.num_qubits == 5
    assert entry.target["cx"].keys() == load_catalogue().get("fake_5q").target["cx"].keys()


@needs_ibm_runtime
def test_toml_loads_a_fake_provider_snapshot(tmp_path: Path) -> None:
    path = write(tmp_path, '[backends.kolkata]\nkind = "device"\nfake_provider = "FakeKolkataV2"\n')
    entry = load_catalogue(path).get("kolkata")
    assert entry.spec.num_qubits == 27
    assert entry.properties() is not None
    assert entry.target.dt == pytest.approx(2 / 9 * 1e-9)
    # The IBM name works as well as the class name.
    path = write(tmp_path, '[backends.kolkata]\nkind = "device"\nfake_provider = "fake_kolkata"\n')
    assert load_catalogue(path).get("kolkata").configuration()["n_qubits"] == 27


@needs_ibm_runtime
def test_one_line_offers_every_snapshot_under_its_ibm_name(tmp_path: Path) -> None:
    from qiskit_ibm_runtime import fake_provider

    path = write(tmp_path, '[catalogue]\nfake_provider = "all"\n')
    catalogue = load_catalogue(path)
    shipped = {
        cls.backend_name
        for cls in vars(fake_provider).values()
        if isinstance(cls, type) and getattr(cls, "props_filename", None)
    }
    assert len(shipped) > 50
    assert shipped <= set(catalogue.names())
    for name in ("fake_sherbrooke", "fake_torino", "fake_kyiv", "fake_manila", "fake_brisbane"):
        spec = catalogue.get(name).spec
        assert (spec.kind, spec.simulator, spec.lanes, spec.fake_provider) == (
            "device",
            False,
            1,
            name,
        )
    assert catalogue.get("fake_manila").target.num_qubits == 5


@needs_ibm_runtime
def test_a_family_or_a_pattern_offers_some_snapshots(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[defaults]\nreplace = true\n[catalogue]\nfake_provider = ["Eagle", "fake_k*"]\n'
        '[backends.fake_kyiv]\nkind = "device"\nfake_provider = "fake_kyiv"\n'
        'description = "our Kyiv"\n',
    )
    catalogue = load_catalogue(path)
    assert "fake_sherbrooke" in catalogue.names()
    assert "fake_kolkata" in catalogue.names()  # a 27-qubit Falcon, by its pattern
    assert "fake_torino" not in catalogue.names()  # a Heron
    assert all(catalogue.get(n).spec.num_qubits == 127 for n in ("fake_brisbane", "fake_kyiv"))
    assert catalogue.get("fake_kyiv").spec.description == "our Kyiv"  # the table wins


@needs_ibm_runtime
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"Condor"', "matches no device snapshot"),
        ('["fake_nowhere*"]', "matches no device snapshot"),
        ("3", 'must be "all" or a list of strings'),
    ],
)
def test_catalogue_selection_mistakes_name_the_file_and_key(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(tmp_path, f"[catalogue]\nfake_provider = {value}\n")
    with pytest.raises(InputValueError, match=message) as caught:
        load_catalogue(path)
    assert str(caught.value).startswith(f"{path}: [catalogue] fake_provider: ")


def test_missing_qiskit_ibm_runtime_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "qiskit_ibm_runtime" else real_find_spec(name, *a),
    )
    path = write(tmp_path, '[backends.k]\nkind = "device"\nfake_provider = "FakeKolkataV2"\n')
    with pytest.raises(InputValueError, match="pip install qiskit-ibm-runtime"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ('kind = "aer"\nlanse = 2', "lanse", "unknown key"),
        ('kind = "quantum"', "kind", "kind must be"),
        ('kind = "aer"\nlanes = "2"', "lanes", "must be int"),
        ('kind = "aer"\nlanes = true', "lanes", "must be int"),
        ('kind = "aer"\nlanes = 0', "lanes", "at least 1"),
        ('kind = "aer"\nmethod = "magic"', "method", "must be one of"),
        ('kind = "device"\ndevice = "fake_9q"', "device", "unknown device"),
        ('kind = "device"\ndevice = "fake_5q"\nlanes = 2', "lanes", "one job at a time"),
        (
            'kind = "device"\nsnapshot_configuration = "nope.json"\n'
            'snapshot_properties = "nope.json"',
            "snapshot_configuration",
            "does not exist",
        ),
    ],
)
def test_toml_mistakes_name_the_file_backend_and_key(
    tmp_path: Path, body: str, key: str, message: str
) -> None:
    path = write(tmp_path, f"[backends.broken]\n{body}\n")
    with pytest.raises(InputValueError, match=message) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: [backends.broken] {key}: ")
    assert "\n" not in text


def test_toml_device_without_a_source_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[backends.empty]\nkind = "device"\n')
    with pytest.raises(InputValueError, match="exactly one of device"):
        load_catalogue(path)


def test_toml_that_is_not_toml_is_refused_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "[backends\n")
    with pytest.raises(InputValueError, match="not a readable TOML file"):
        load_catalogue(path)
