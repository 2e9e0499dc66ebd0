"""Strict parsing of numbers given as text (domain/numerals.py) and the per-platform rules for
resource values built on it (service/resource_requirements.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from batchyard.domain.errors import ClientException
from batchyard.domain.model import Resources
from batchyard.domain.numerals import (
    INT64_MAX,
    MAX_NUMERAL_LENGTH,
    NumeralError,
    is_integral,
    parse_decimal,
    parse_integer,
)
from batchyard.service.resource_requirements import (
    EC2,
    FARGATE,
    FARGATE_MEMORY_MIB,
    check_eks_pod,
    container_requested,
    platform_of,
)

# Everything float() or int() takes that AWS does not.
LOOSE = [
    "inf", "-inf", "Infinity", "nan", "NaN", "1e308", "1E3", "1_0", "\u0661", "\u0662\u0660",
    "\uff11", " 1", "1 ", "\t1", "1\n", "+1", "0x10", "0b1", ".5", "5.", "1.2.3", "", "-",
    "1,5", "\u00b2",
]  # fmt: skip


@pytest.mark.parametrize("text", LOOSE)
def test_parse_decimal_refuses_what_float_takes(text: str) -> None:
    with pytest.raises(NumeralError):
        parse_decimal(text)


@pytest.mark.parametrize("text", LOOSE)
def test_parse_integer_refuses_what_int_takes(text: str) -> None:
    with pytest.raises(NumeralError):
        parse_integer(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", Decimal(0)), ("2", Decimal(2)), ("0.25", Decimal("0.25")), ("-1.5", Decimal("-1.5")),
     ("0001", Decimal(1)), ("4096.0", Decimal(4096))],
)  # fmt: skip
def test_parse_decimal_reads_plain_notation_exactly(text: str, value: Decimal) -> None:
    assert parse_decimal(text) == value


def test_parse_decimal_keeps_digits_float_would_round() -> None:
    assert parse_decimal("0.1") + parse_decimal("0.2") == Decimal("0.3")


def test_parse_integer_bounds() -> None:
    assert parse_integer(str(INT64_MAX)) == INT64_MAX
    assert parse_integer("-5") == -5
    with pytest.raises(NumeralError, match="outside"):
        parse_integer(str(INT64_MAX + 1))
    with pytest.raises(NumeralError, match="outside"):
        parse_integer("0", 1, 10)
    assert parse_integer("10", 1, 10) == 10


def test_overlong_text_is_refused_before_conversion() -> None:
    with pytest.raises(NumeralError):
        parse_integer("1" * (MAX_NUMERAL_LENGTH + 1))
    with pytest.raises(NumeralError):
        parse_decimal("1" * 5000)
    assert parse_integer("0" * (MAX_NUMERAL_LENGTH - 1) + "7") == 7


@pytest.mark.parametrize("text", [None, 1, 1.5, b"1", ["1"]])
def test_only_text_is_parsed(text: object) -> None:
    with pytest.raises(NumeralError):
        parse_decimal(text)
    with pytest.raises(NumeralError):
        parse_integer(text)


def test_is_integral() -> None:
    assert is_integral(Decimal("4096.000"))
    assert not is_integral(Decimal("4096.5"))


# -- resource values per platform -------------------------------------------------------------


def container(*requirements: tuple[str, str], **legacy: int) -> dict[str, object]:
    return {
        "image": "busybox",
        "resourceRequirements": [{"type": t, "value": v} for t, v in requirements],
        **legacy,
    }


def refused(document: dict[str, object], platform: str, *words: str) -> str:
    with pytest.raises(ClientException) as caught:
        container_requested(document, platform, "containerProperties")
    message = caught.value.message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("value", ["inf", "nan", "NaN", "-inf", "1_0", "\u0661", " 1", "+1"])
def test_vcpu_text_that_is_not_plain_decimal_is_refused(value: str) -> None:
    refused(container(("VCPU", value)), EC2, "VCPU", repr(value), "not a number")


def test_ec2_needs_at_least_one_vcpu() -> None:
    refused(container(("VCPU", "0.0001")), EC2, "at least 1", "EC2")
    refused(container(("VCPU", "0")), EC2, "greater than 0")
    refused(container(("VCPU", "-2")), EC2, "greater than 0")
    assert container_requested(container(("VCPU", "1.5")), EC2, "c").resources().vcpus == 1.5


def test_memory_must_be_whole_mib_within_the_integer_range() -> None:
    refused(container(("MEMORY", "1e308")), EC2, "MEMORY", "not a number")
    refused(container(("MEMORY", "9" * 40)), EC2, "MEMORY", "2147483647")
    refused(container(("MEMORY", "3")), EC2, "MEMORY", "from 4")
    refused(container(("MEMORY", "512.5")), EC2, "whole number")
    assert container_requested(container(("MEMORY", "2147483647")), EC2, "c").memory_mib == (
        2**31 - 1
    )


def test_gpu_must_be_a_whole_number() -> None:
    refused(container(("GPU", "0.5")), EC2, "GPU", "whole number")
    assert container_requested(container(("GPU", "2")), EC2, "c").gpus == 2


def test_a_type_listed_twice_is_refused() -> None:
    refused(container(("VCPU", "1"), ("VCPU", "2")), EC2, "VCPU twice")


def test_fargate_vcpu_and_memory_pairs() -> None:
    refused(container(("VCPU", "3"), ("MEMORY", "8192")), FARGATE, "VCPU 3", "0.25, 0.5, 1, 2")
    refused(container(("VCPU", "0.0001")), FARGATE, "not supported on Fargate")
    refused(
        container(("VCPU", "0.25"), ("MEMORY", "4096")), FARGATE, "MEMORY 4096", "512, 1024, 2048"
    )
    refused(container(("MEMORY", "1000")), FARGATE, "MEMORY 1000")
    for vcpus, allowed in FARGATE_MEMORY_MIB.items():
        for memory in allowed:
            needs = container_requested(
                container(("VCPU", str(vcpus)), ("MEMORY", str(memory))), FARGATE, "c"
            )
            assert needs.resources() == Resources(float(vcpus), memory, 0)
    # The documented table: 16 vCPU goes from 32 GiB to 120 GiB in 8 GiB steps.
    assert sorted(FARGATE_MEMORY_MIB[Decimal(16)]) == list(range(32768, 122881, 8192))


def test_fargate_takes_no_gpus_and_no_legacy_fields() -> None:
    refused(container(("VCPU", "1"), ("GPU", "1")), FARGATE, "GPU", "Fargate")
    refused(container(vcpus=1), FARGATE, "vcpus", "not applicable for Fargate")
    refused(container(memory=2048), FARGATE, "memory", "not applicable for Fargate")


def test_legacy_fields_are_checked_too() -> None:
    refused(container(vcpus=0), EC2, "vcpus", "from 1")
    refused(container(memory=2), EC2, "memory", "from 4")
    refused(container(vcpus=2**31), EC2, "vcpus", "2147483647")
    needs = container_requested(container(vcpus=2, memory=512), EC2, "c")
    assert needs.resources() == Resources(2.0, 512, 0)


def test_platform_of_capabilities() -> None:
    assert platform_of(()) == EC2
    assert platform_of(("EC2",)) == EC2
    assert platform_of(("FARGATE",)) == FARGATE
    assert platform_of(("MANAGED_INSTANCES",)) == EC2


# -- EKS pods ---------------------------------------------------------------------------------


def pod(limits: dict[str, str] | None = None, requests: dict[str, str] | None = None) -> Any:
    resources = {k: v for k, v in (("limits", limits), ("requests", requests)) if v is not None}
    return {"containers": [{"image": "busybox", "resources": resources}]}


def eks_refused(document: Any, *words: str) -> None:
    with pytest.raises(ClientException) as caught:
        check_eks_pod(document, "eksProperties.podProperties")
    for word in words:
        assert word in caught.value.message, caught.value.message


@pytest.mark.parametrize("cpu", ["inf", "nan", "0.3", "0", "1_0", "\u0661", " 1", "100m", "1e3"])
def test_eks_cpu_must_be_a_multiple_of_a_quarter(cpu: str) -> None:
    eks_refused(pod(limits={"cpu": cpu}), "cpu")


@pytest.mark.parametrize("memory", ["2048", "2048Gi", "1e308Mi", "nanMi", "2Mi", "10.5Mi"])
def test_eks_memory_must_be_whole_mib(memory: str) -> None:
    eks_refused(pod(requests={"memory": memory}), "memory")


def test_eks_limits_and_requests_must_agree() -> None:
    eks_refused(pod({"memory": "2048Mi"}, {"memory": "1024Mi"}), "memory", "equal")
    eks_refused(pod({"cpu": "1"}, {"cpu": "2"}), "cpu limits")
    eks_refused(pod({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"}), "nvidia.com/gpu")
    eks_refused(pod({"nvidia.com/gpu": "0.5"}), "nvidia.com/gpu")


def test_eks_values_aws_allows() -> None:
    check_eks_pod(pod({"cpu": "2", "memory": "2048Mi"}, {"cpu": "500m", "memory": "2048Mi"}), "p")
    check_eks_pod(pod({"nvidia.com/gpu": "1", "ephemeral-storage": "1Gi"}), "p")
    check_eks_pod({"initContainers": [{"image": "busybox"}]}, "p")
    check_eks_pod(None, "p")
