"""rvm_node lifecycle over real rclpy: transitions, parameter validation, runtime loading."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import (
    NodeProcess,
    RosPeer,
    diag_values,
    image_msg,
    pick_domain_id,
    stamp_ns,
    wait_until,
)
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rvm_ros.msg import FeatureMap
from rvm_ros.srv import SetQueryPoints
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros

S = 1_000_000_000
BASE_ARGS = [
    "--params-file",
    "config/rvm.yaml",
    "-p",
    "checkpoint:=random:tiny",
    "-p",
    "backend:=torch",
    "-p",
    "model_height:=64",
    "-p",
    "model_width:=64",
    "-p",
    "diagnostics_period_s:=0.2",
    "-p",
    "input_reliability:=reliable",
]


@pytest.fixture(scope="module")
def domain() -> int:
    return pick_domain_id(__name__)


@pytest.fixture(scope="module")
def peer(domain: int) -> Iterator[RosPeer]:
    p = RosPeer(domain)
    yield p
    p.close()


class Lifecycle:
    def __init__(self, peer: RosPeer) -> None:
        self.peer = peer
        self._matched = False

    def state(self) -> str:
        return str(
            self.peer.call(GetState, "/rvm/get_state", GetState.Request()).current_state.label
        )

    def change(self, transition: int) -> bool:
        if not self._matched:  # a no-op first, safe to repeat (see RosPeer.call)
            noop = ChangeState.Request(transition=Transition(label="rvm_test_no_such_transition"))
            assert not self.peer.call(ChangeState, "/rvm/change_state", noop).success
            self._matched = True
        req = ChangeState.Request(transition=Transition(id=transition))
        return bool(self.peer.call(ChangeState, "/rvm/change_state", req, repeat=False).success)

    def try_param(self, name: str, value: ParameterValue) -> tuple[bool, str]:
        req = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
        resp = self.peer.call(SetParameters, "/rvm/set_parameters", req)
        return resp.results[0].successful, resp.results[0].reason

    def get_param(self, name: str) -> ParameterValue:
        req = GetParameters.Request(names=[name])
        return self.peer.call(GetParameters, "/rvm/get_parameters", req).values[0]

    def set_param(self, name: str, value: ParameterValue) -> None:
        ok, reason = self.try_param(name, value)
        assert ok, reason


def _int(v: int) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)


def _str(v: str) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)


def _float(v: float) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)


def test_lifecycle_transitions(domain: int, peer: RosPeer, tmp_path_factory) -> None:
    node = NodeProcess(
        [*BASE_ARGS, "-p", "autostart:=false"],
        domain,
        tmp_path_factory.mktemp("lc") / "rvm_node.log",
    )
    try:
        lc = Lifecycle(peer)
        assert lc.state() == "unconfigured"
        features = peer.collect(FeatureMap, "/rvm/front/features")
        diag = peer.collect(DiagnosticArray, "/diagnostics")
        pub = peer.publisher(Image, "/front/image_raw")

        def front_diag(pred):  # newest status of camera front where pred holds
            def newest():
                for msg in reversed(diag.msgs):
                    v = diag_values(msg, "camera front")
                    if v is not None:
                        return v if pred(v) else None
                return None

            return wait_until(newest, what="camera front diagnostics")

        # An invalid value is refused when it is set, naming the parameter and the rule
        # (issue 27: they were accepted, read back as set, and ignored).
        for name, value, reason in [
            ("feature_pool", _int(3), "invalid parameter 'feature_pool': must be one of 1 | 2 | 4"),
            ("model_height", _int(-5), "model_height out of range"),
            ("model_height", _str("big"), "invalid parameter 'model_height': expected an integer"),
            ("tracker.lk_window", _int(-3), "tracker.lk_window out of range"),
            ("reset_on_gap_s", _float(float("nan")), "reset_on_gap_s"),
            ("cameras.front.transport", _str("carrier_pigeon"), "must be one of raw | compressed"),
        ]:
            ok, why = lc.try_param(name, value)
            assert not ok and reason in why, (name, why)
        assert lc.get_param("feature_pool").integer_value == 1  # unchanged
        assert lc.get_param("model_height").integer_value == 64
        assert lc.change(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == "inactive"
        peer.wait_matched(pub)

        # Configured: every parameter is read already; a change is refused, not ignored.
        ok, why = lc.try_param("checkpoint", _str("/nonexistent"))
        assert not ok and "cannot change while it is inactive" in why
        assert lc.get_param("checkpoint").string_value == "random:tiny"

        # Inactive: frames are received (and counted) but not processed.
        pub.publish(image_msg(1 * S, "front"))
        assert front_diag(lambda v: v["received"] == "1")["ignored_inactive"] == "1"
        node_status = wait_until(
            lambda: next(
                (s for m in diag.msgs for s in m.status if s.name.endswith(": node")), None
            )
        )
        assert node_status.message == "inactive (no runtime loaded)"
        # Services answer, but refuse while there is no runtime.
        resp = peer.call(Trigger, "/rvm/reset", Trigger.Request())
        assert not resp.success and "not active" in resp.message
        req = SetQueryPoints.Request(camera="front", x=[1.0], y=[1.0])
        resp = peer.call(SetQueryPoints, "/rvm/set_query_points", req)
        assert not resp.success and resp.message == "node is not active"

        assert lc.change(Transition.TRANSITION_ACTIVATE)
        assert lc.state() == "active"
        node.wait_log("runtime: torch fp32 on cpu, model tiny-random0")
        ok, why = lc.try_param("tracker.lk_window", _int(31))  # valid, but not applied live
        assert not ok and "cannot change while it is active" in why
        pub.publish(image_msg(2 * S, "front"))
        m = features.wait_stamp(2 * S)
        assert m.reset_reason == "first_frame"

        assert lc.change(Transition.TRANSITION_DEACTIVATE)
        assert lc.state() == "inactive"
        pub.publish(image_msg(3 * S, "front"))
        front_diag(lambda v: v["received"] == "3")
        assert front_diag(lambda v: True)["processed"] == "1"
        assert not features.by_stamp(3 * S)

        # Reactivation loads a fresh runtime: the state starts again.
        assert lc.change(Transition.TRANSITION_ACTIVATE)
        pub.publish(image_msg(4 * S, "front"))
        assert features.wait_stamp(4 * S).reset_reason == "first_frame"

        # A checkpoint that does not exist: activation fails and says which file.
        assert lc.change(Transition.TRANSITION_DEACTIVATE)
        assert lc.change(Transition.TRANSITION_CLEANUP)
        assert lc.state() == "unconfigured"
        lc.set_param("checkpoint", _str("/nonexistent/rvm_S.safetensors"))
        assert lc.change(Transition.TRANSITION_CONFIGURE)
        assert not lc.change(Transition.TRANSITION_ACTIVATE)
        assert lc.state() == "inactive"
        node.wait_log("cannot load the runtime")
        assert "/nonexistent/rvm_S.safetensors" in node.log()

        assert lc.change(Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert lc.state() == "finalized"
        assert node.alive()
        assert stamp_ns(m.header) == 2 * S
    finally:
        code = node.stop()
        print(node.log())
    assert code == 0


def test_autostart_with_an_invalid_parameter_stays_unconfigured(
    domain: int, peer: RosPeer, tmp_path_factory
) -> None:
    node = NodeProcess(
        # track_grid out of its range at start: the node still starts (no exception from
        # the descriptor's range) and configure names the first invalid parameter.
        [
            *BASE_ARGS,
            "-p",
            "resize_mode:=squash",
            "-p",
            "feature_pooling:=2",
            "-p",
            "track_grid:=-1",
        ],
        domain,
        tmp_path_factory.mktemp("lc") / "rvm_node.log",
    )
    try:
        node.wait_log("autostart: configure failed")
        log = node.log()
        assert (
            "invalid parameter 'resize_mode': must be one of stretch | letterbox | center_crop"
            in log
        )
        assert "ignoring unknown parameter(s): feature_pooling" in log
        assert Lifecycle(peer).state() == "unconfigured"
        assert node.alive()
    finally:
        code = node.stop()
    assert code == 0
