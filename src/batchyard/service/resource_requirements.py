"""The values AWS Batch allows for a container's resources, per platform: resourceRequirements
(VCPU, MEMORY, GPU) and the legacy vcpus/memory fields, in job definitions and in SubmitJob
overrides, and the Resources a container so described needs.

AWS's rules (API reference, ResourceRequirement.value; docs/aws-behaviour.md, #overrides-and-
resources): on EC2 a job needs at least one vCPU and 4 MiB; on Fargate VCPU is one of 0.25, 0.5,
1, 2, 4, 8, 16, 32, MEMORY one of the values listed for that VCPU, no GPUs and no legacy fields.
Upper bounds are the range of the legacy `vcpus`/`memory` members (Java Integer), so every value
fits the store. docs/validation.md states the rules for users.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from batchyard.domain.model import Document, Resources
from batchyard.domain.numerals import INT32_MAX, NumeralError, is_integral, parse_decimal
from batchyard.service.job_properties import invalid

EC2 = "EC2"
FARGATE = "FARGATE"
DEFAULT_VCPUS = 1.0
DEFAULT_MEMORY_MIB = 2048
MIN_EC2_VCPUS = Decimal(1)
MIN_MEMORY_MIB = 4
MAX_VCPUS = Decimal(INT32_MAX)
MAX_MEMORY_MIB = INT32_MAX
MAX_GPUS = INT32_MAX
RESOURCE_TYPES = ("VCPU", "MEMORY", "GPU")


def _mib(low: int, high: int, step: int) -> frozenset[int]:
    return frozenset(range(low, high + 1, step))


# MEMORY (MiB) Fargate allows with each VCPU value (API reference, ResourceRequirement.value).
FARGATE_MEMORY_MIB: Mapping[Decimal, frozenset[int]] = {
    Decimal("0.25"): frozenset({512, 1024, 2048}),
    Decimal("0.5"): _mib(1024, 4096, 1024),
    Decimal(1): _mib(2048, 8192, 1024),
    Decimal(2): _mib(4096, 16384, 1024),
    Decimal(4): _mib(8192, 30720, 1024),
    Decimal(8): _mib(16384, 61440, 4096),
    Decimal(16): _mib(32768, 122880, 8192),
    Decimal(32): frozenset({61440, 122880, 249856}),
}


def platform_of(platform_capabilities: Collection[str]) -> str:
    """The platform whose rules a job definition's containers follow (EC2 unless FARGATE;
    MANAGED_INSTANCES runs on EC2 instances)."""
    return FARGATE if FARGATE in platform_capabilities else EC2


@dataclass(frozen=True, slots=True)
class Requested:
    """What a container states it needs (None where it states nothing), checked."""

    vcpus: Decimal | None = None
    memory_mib: int | None = None
    gpus: int | None = None
    legacy: tuple[str, ...] = ()  # the deprecated vcpus/memory fields it used

    def resources(self) -> Resources:
        return Resources(
            vcpus=float(self.vcpus) if self.vcpus is not None else DEFAULT_VCPUS,
            memory_mib=self.memory_mib if self.memory_mib is not None else DEFAULT_MEMORY_MIB,
            gpus=self.gpus or 0,
        )


def _shown(values: Iterable[object]) -> str:
    return ", ".join(str(value) for value in values)


def requirement_values(requirements: Sequence[Document] | None, where: str) -> dict[str, Decimal]:
    """A resourceRequirements list's values by type: each type once, each value a finite
    number in plain decimal notation. Ranges are `requested`'s to check."""
    values: dict[str, Decimal] = {}
    for requirement in requirements or ():
        kind, value = requirement.get("type"), requirement.get("value")
        if kind not in RESOURCE_TYPES:
            raise invalid(
                f"resourceRequirements type {kind!r} in {where} is not one of "
                f"{_shown(RESOURCE_TYPES)}."
            )
        if kind in values:
            raise invalid(f"resourceRequirements in {where} lists {kind} twice.")
        try:
            values[kind] = parse_decimal(value)
        except NumeralError as error:
            raise invalid(
                f"resourceRequirements {kind} value {value!r} in {where} {error}."
            ) from None
    return values


def _whole(kind: str, value: Decimal, low: int, high: int, unit: str, where: str) -> int:
    if not is_integral(value) or not low <= value <= high:
        raise invalid(
            f"{kind} in {where} must be a whole number{unit} from {low} to {high}; got {value}."
        )
    return int(value)


def _legacy(container: Document, key: str, low: int, where: str) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT32_MAX:
        raise invalid(f"{where}.{key} must be an integer from {low} to {INT32_MAX}; got {value}.")
    return value


def requested(container: Document, where: str) -> Requested:
    """A container's resourceRequirements, else its legacy vcpus/memory, checked against the
    rules every platform shares (positive, finite, whole MiB and GPUs, at most MAX_*)."""
    values = requirement_values(container.get("resourceRequirements"), where)
    vcpus = values.get("VCPU")
    if vcpus is not None and not Decimal(0) < vcpus <= MAX_VCPUS:
        raise invalid(
            f"VCPU in {where} must be greater than 0 and at most {MAX_VCPUS}; got {vcpus}."
        )
    memory = gpus = None
    if "MEMORY" in values:
        memory = _whole(
            "MEMORY", values["MEMORY"], MIN_MEMORY_MIB, MAX_MEMORY_MIB, " of MiB", where
        )
    if "GPU" in values:
        gpus = _whole("GPU", values["GPU"], 0, MAX_GPUS, "", where)
    legacy = []
    legacy_vcpus = _legacy(container, "vcpus", int(MIN_EC2_VCPUS), where)
    if legacy_vcpus is not None:
        legacy.append("vcpus")
        if vcpus is None:
            vcpus = Decimal(legacy_vcpus)
    legacy_memory = _legacy(container, "memory", MIN_MEMORY_MIB, where)
    if legacy_memory is not None:
        legacy.append("memory")
        if memory is None:
            memory = legacy_memory
    return Requested(vcpus=vcpus, memory_mib=memory, gpus=gpus, legacy=tuple(legacy))


def combined(parts: Iterable[Requested]) -> Requested:
    """What the containers of one task state together (a Fargate task is sized by the sum)."""
    vcpus: Decimal | None = None
    memory: int | None = None
    gpus: int | None = None
    legacy: list[str] = []
    for part in parts:
        if part.vcpus is not None:
            vcpus = (vcpus or Decimal(0)) + part.vcpus
        if part.memory_mib is not None:
            memory = (memory or 0) + part.memory_mib
        if part.gpus is not None:
            gpus = (gpus or 0) + part.gpus
        legacy.extend(part.legacy)
    return Requested(vcpus=vcpus, memory_mib=memory, gpus=gpus, legacy=tuple(legacy))


def check_platform(needs: Requested, platform: str, where: str) -> None:
    """The rules of one platform: EC2 at least one vCPU; Fargate its fixed VCPU/MEMORY pairs,
    no GPUs, no legacy fields."""
    if platform != FARGATE:
        if needs.vcpus is not None and needs.vcpus < MIN_EC2_VCPUS:
            raise invalid(
                f"VCPU in {where} must be at least {MIN_EC2_VCPUS} for jobs on EC2 resources; "
                f"got {needs.vcpus}."
            )
        return
    if needs.legacy:
        raise invalid(
            f"{where}.{needs.legacy[0]} is not applicable for Fargate: use "
            "resourceRequirements instead."
        )
    if needs.gpus:
        raise invalid(f"GPU in {where} is not supported for jobs on Fargate resources.")
    if needs.vcpus is not None and needs.vcpus not in FARGATE_MEMORY_MIB:
        raise invalid(
            f"VCPU {needs.vcpus} in {where} is not supported on Fargate resources; the "
            f"supported values are {_shown(FARGATE_MEMORY_MIB)}."
        )
    if needs.memory_mib is None:
        return
    if needs.vcpus is None:
        if not any(needs.memory_mib in allowed for allowed in FARGATE_MEMORY_MIB.values()):
            raise invalid(
                f"MEMORY {needs.memory_mib} in {where} is not supported on Fargate resources."
            )
        return
    allowed = FARGATE_MEMORY_MIB[needs.vcpus]
    if needs.memory_mib not in allowed:
        raise invalid(
            f"MEMORY {needs.memory_mib} in {where} is not supported with VCPU {needs.vcpus} on "
            f"Fargate resources; the supported values are {_shown(sorted(allowed))}."
        )


def container_requested(container: Document, platform: str, where: str) -> Requested:
    """`requested` and then the platform's rules: one container that is the whole job."""
    needs = requested(container, where)
    check_platform(needs, platform, where)
    return needs


# -- EKS pods: Kubernetes resource quantities ------------------------------------------------

EKS_CPU_STEP = Decimal("0.25")
_MILLI = Decimal("0.001")


def _eks_cpu(value: object, where: str) -> Decimal:
    text = value if isinstance(value, str) else ""
    try:
        # Kubernetes also writes CPUs in thousandths ("500m").
        cpus = parse_decimal(text[:-1]) * _MILLI if text.endswith("m") else parse_decimal(value)
    except NumeralError:
        raise invalid(f"cpu {value!r} in {where} is not a number of CPUs.") from None
    if not Decimal(0) < cpus <= MAX_VCPUS or cpus % EKS_CPU_STEP:
        raise invalid(
            f"cpu in {where} must be a multiple of {EKS_CPU_STEP}, greater than 0 and at most "
            f"{MAX_VCPUS}; got {value}."
        )
    return cpus


def _eks_memory(value: object, where: str) -> int:
    text = value if isinstance(value, str) else ""
    try:
        if not text.endswith("Mi"):
            raise NumeralError("has no Mi suffix")
        mib = parse_decimal(text[:-2])
    except NumeralError:
        raise invalid(
            f"memory {value!r} in {where} must be a whole number of MiB with an Mi suffix "
            "(for example 2048Mi)."
        ) from None
    return _whole("memory", mib, MIN_MEMORY_MIB, MAX_MEMORY_MIB, " of MiB", where)


def _eks_gpus(value: object, where: str) -> int:
    try:
        gpus = parse_decimal(value)
    except NumeralError:
        raise invalid(f"nvidia.com/gpu {value!r} in {where} is not a number.") from None
    return _whole("nvidia.com/gpu", gpus, 0, MAX_GPUS, "", where)


_EKS_QUANTITIES: Mapping[str, Callable[[object, str], Decimal | int]] = {
    "cpu": _eks_cpu,
    "memory": _eks_memory,
    "nvidia.com/gpu": _eks_gpus,
}


def check_eks_pod(pod: Document | None, where: str) -> None:
    """The resources of each container (and init container) of an EKS pod: cpu a multiple of
    0.25, memory whole MiB with an Mi suffix (at least 4), nvidia.com/gpu a whole number;
    where limits and requests both name one, memory and GPUs equal, cpu limits at least the
    request (API reference, EksContainerResourceRequirements). Other names are Kubernetes'."""
    for key in ("containers", "initContainers"):
        for position, container in enumerate((pod or {}).get(key) or ()):
            resources = container.get("resources") or {}
            at = f"{where}.{key}[{position}].resources"
            parsed: dict[str, dict[str, Decimal | int]] = {}
            for side in ("limits", "requests"):
                quantities = resources.get(side) or {}
                parsed[side] = {
                    name: read(quantities[name], f"{at}.{side}")
                    for name, read in _EKS_QUANTITIES.items()
                    if name in quantities
                }
            limits, requests = parsed["limits"], parsed["requests"]
            for name in ("memory", "nvidia.com/gpu"):
                if name in limits and name in requests and limits[name] != requests[name]:
                    raise invalid(f"{name} limits and requests in {at} must be equal.")
            if "cpu" in limits and "cpu" in requests and limits["cpu"] < requests["cpu"]:
                raise invalid(f"cpu limits in {at} must be at least the cpu requests.")
