"""Our IBM JSON is what qiskit-ibm-runtime's own models and converter expect."""

from __future__ import annotations

import copy
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
from qiskit.transpiler import Target

from qruntime.backends import (
    ReadoutProperties,
    load_catalogue,
    target_from_ibm_json,
    target_to_configuration,
    target_to_properties,
)
from qruntime.backends.catalogue import BackendEntry

ibm_models = pytest.importorskip("qiskit_ibm_runtime.models")
ibm_converter = pytest.importorskip("qiskit_ibm_runtime.utils.backend_converter")
ibm_decoder = pytest.importorskip("qiskit_ibm_runtime.utils.backend_decoder")

#: IBM device snapshots of the default catalogue: an Eagle (ecr) and two Herons (cz).
SNAPSHOTS = ["fake_sherbrooke", "fake_torino", "fake_fez"]


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-18)


def assert_same_target(ours: Target, theirs: Target) -> None:
    assert ours.num_qubits == theirs.num_qubits
    assert _close(ours.dt, theirs.dt)
    assert set(ours.operation_names) == set(theirs.operation_names)
    for name in ours.operation_names:
        ours_props, theirs_props = ours[name], theirs[name]
        assert set(ours_props) == set(theirs_props), name
        for qargs, prop in ours_props.items():
            other = theirs_props[qargs]
            if prop is None or other is None:
                assert prop is None, (name, qargs)
                assert other is None, (name, qargs)
                continue
            assert _close(prop.error, other.error), (name, qargs)
            assert _close(prop.duration, other.duration), (name, qargs)
    ours_q, theirs_q = ours.qubit_properties or [], theirs.qubit_properties or []
    assert len(ours_q) == len(theirs_q)
    for a, b in zip(ours_q, theirs_q, strict=True):
        assert _close(a.t1, b.t1)
        assert _close(a.t2, b.t2)
        assert _close(a.frequency, b.frequency)


def ibm_target(configuration: dict[str, Any], properties: dict[str, Any] | None) -> Target:
    """What stock qiskit-ibm-runtime builds from the documents, via its own decoders.

    ``use_fractional_gates=None`` keeps every gate; by default the client drops rx, rzz and
    the like from the ideal simulator's target, which only narrows what it transpiles to.
    """
    conf = ibm_decoder.configuration_from_server_data(
        copy.deepcopy(configuration), use_fractional_gates=None
    )
    assert conf is not None, "qiskit-ibm-runtime refused the configuration"
    props = None
    if properties is not None:
        props = ibm_decoder.properties_from_server_data(
            copy.deepcopy(properties), use_fractional_gates=None
        )
    return ibm_converter.convert_to_target(conf, props)


@pytest.fixture(scope="module")
def catalogue_entries() -> dict[str, BackendEntry]:
    return {entry.name: entry for entry in load_catalogue()}


@pytest.fixture(scope="module")
def kolkata() -> tuple[dict[str, Any], dict[str, Any]]:
    root = Path(ibm_models.__file__).parent.parent / "fake_provider" / "backends" / "kolkata"
    conf = json.loads((root / "conf_kolkata.json").read_text())
    props = json.loads((root / "props_kolkata.json").read_text())
    return conf, props


@pytest.mark.parametrize("name", ["fake_5q", "fake_27q", "aer_simulator"])
def test_catalogue_documents_load_in_ibm_models(
    catalogue_entries: dict[str, BackendEntry], name: str
) -> None:
    entry = catalogue_entries[name]
    configuration = entry.configuration()
    conf = ibm_models.BackendConfiguration.from_dict(copy.deepcopy(configuration))
    assert conf.backend_name == name
    assert conf.n_qubits == entry.target.num_qubits
    assert conf.local is False
    assert conf.open_pulse is False
    assert conf.simulator is (name == "aer_simulator")
    assert conf.max_shots == 100_000
    properties = entry.properties()
    if name == "aer_simulator":
        assert properties is None
        assert configuration["coupling_map"] is None
    else:
        assert properties is not None
        props = ibm_models.BackendProperties.from_dict(copy.deepcopy(properties))
        assert props.t1(0) == pytest.approx(entry.target.qubit_properties[0].t1)
    json.dumps(configuration)  # plain JSON types only


@pytest.mark.parametrize("name", ["fake_5q", "fake_27q", "aer_simulator", *SNAPSHOTS])
def test_ibm_converter_rebuilds_the_same_target(
    catalogue_entries: dict[str, BackendEntry], name: str
) -> None:
    entry = catalogue_entries[name]
    theirs = ibm_target(entry.configuration(), entry.properties())
    assert_same_target(entry.target, theirs)


@pytest.mark.parametrize("name", ["fake_5q", "fake_27q", "aer_simulator", *SNAPSHOTS])
def test_our_converter_rebuilds_the_same_target_from_our_json(
    catalogue_entries: dict[str, BackendEntry], name: str
) -> None:
    entry = catalogue_entries[name]
    assert_same_target(
        target_from_ibm_json(entry.configuration(), entry.properties()), entry.target
    )


def test_fake_provider_snapshot_converts_like_qiskit_ibm_runtime(
    kolkata: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    conf, props = kolkata
    ours = target_from_ibm_json(conf, props)
    assert_same_target(ours, ibm_target(conf, props))


def test_fake_provider_snapshot_round_trips_through_our_json(
    kolkata: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    target = target_from_ibm_json(*kolkata)
    configuration = target_to_configuration(target, backend_name="kolkata_copy")
    properties = target_to_properties(target, backend_name="kolkata_copy")
    assert properties is not None
    assert_same_target(target_from_ibm_json(configuration, properties), target)
    assert_same_target(ibm_target(configuration, properties), target)


def test_readout_asymmetry_survives_json_and_pickling(
    catalogue_entries: dict[str, BackendEntry],
) -> None:
    entry = catalogue_entries["fake_5q"]
    original = entry.target["measure"][(0,)]
    assert isinstance(original, ReadoutProperties)
    assert original.prob_meas0_prep1 != original.prob_meas1_prep0
    rebuilt = target_from_ibm_json(entry.configuration(), entry.properties())
    for target in (rebuilt, pickle.loads(pickle.dumps(rebuilt)), copy.deepcopy(rebuilt)):
        prop = target["measure"][(0,)]
        assert prop.prob_meas0_prep1 == pytest.approx(original.prob_meas0_prep1)
        assert prop.prob_meas1_prep0 == pytest.approx(original.prob_meas1_prep0)


def test_non_operational_qubit_is_left_out_of_the_target(
    catalogue_entries: dict[str, BackendEntry],
) -> None:
    entry = catalogue_entries["fake_5q"]
    properties = entry.properties()
    assert properties is not None
    properties["qubits"][4].append(
        {"date": "2024-01-01T00:00:00+00:00", "name": "operational", "unit": "", "value": 0}
    )
    target = target_from_ibm_json(entry.configuration(), properties)
    assert (4,) not in target["measure"]
    assert (3, 4) not in target["cx"]
    assert_same_target(target, ibm_target(entry.configuration(), properties))


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_a_served_snapshot_has_the_target_of_qiskit_ibm_runtimes_own_fake_backend(
    catalogue_entries: dict[str, BackendEntry], name: str
) -> None:
    from qiskit_ibm_runtime import fake_provider

    fake = next(
        cls()
        for cls in vars(fake_provider).values()
        if isinstance(cls, type) and getattr(cls, "backend_name", None) == name
    )
    assert_same_target(catalogue_entries[name].target, fake.target)
