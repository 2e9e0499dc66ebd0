"""The store contract for the planner's side: commit a plan (version checks, evaluation flags,
starts) and the snapshot it plans from: MemoryStore and SqlStore (a SQLite file) must behave the
same."""

from __future__ import annotations

from dataclasses import replace

from batchyard.domain.model import (
    Job,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store.base import JobQuery, SnapshotLimits
from tests.builders import (
    a_complete_compute_environment,
    a_complete_queue,
    a_complete_scheduling_policy,
    a_submitted_array,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    flagged_ids,
    set_status,
    summary,
)

S = JobStatus


# -- commit ----------------------------------------------------------------------------------


def test_commit_applies_only_matching_versions(store: AnyStore) -> None:
    a, b = store.insert_jobs([a_submitted_job("a"), a_submitted_job("b")])
    store.mutate_job("b", set_status(S.PENDING))  # b is now at version 2
    plan = Plan(
        updates=(
            replace(a, status=S.RUNNABLE),
            replace(b, status=S.RUNNABLE),  # read at version 1: stale
            replace(a_submitted_job("ghost"), version=1),
        )
    )
    assert store.commit(plan) == {"a"}
    stored_a = store.get_job("a")
    assert stored_a is not None
    assert (stored_a.status, stored_a.version) == (S.RUNNABLE, 2)
    stored_b = store.get_job("b")
    assert stored_b is not None
    assert (stored_b.status, stored_b.version) == (S.PENDING, 2)
    assert store.get_job("ghost") is None
    assert flagged_ids(store) == ["b"]  # applied updates clear the flag


def test_commit_same_job_twice_applies_the_first(store: AnyStore) -> None:
    [a] = store.insert_jobs([a_submitted_job("a")])
    plan = Plan(updates=(replace(a, status=S.PENDING), replace(a, status=S.FAILED)))
    assert store.commit(plan) == {"a"}
    stored = store.get_job("a")
    assert stored is not None
    assert (stored.status, stored.version) == (S.PENDING, 2)


def test_commit_evaluated_clears_flag_only_on_matching_version(store: AnyStore) -> None:
    a, b, _ = store.insert_jobs([a_submitted_job("a"), a_submitted_job("b"), a_submitted_job("c")])
    store.mutate_job("b", set_status(S.PENDING))
    plan = Plan(evaluated=(("a", a.version), ("b", b.version), ("missing", 1)))
    assert store.commit(plan) == set()
    assert flagged_ids(store) == ["b", "c"]
    assert store.get_job("a") == a  # clearing a flag is not a new version


def test_commit_bumps_parent_and_flags_dependents(store: AnyStore) -> None:
    store.insert_jobs(
        [
            *a_submitted_array("p", 2),
            a_submitted_job("after-child", wait_for=("p:0",)),
            a_submitted_job("after-parent", wait_for=("p",)),
            a_submitted_job("unrelated"),
        ]
    )
    store.commit(Plan(updates=tuple(replace(j, status=S.RUNNABLE) for j in _all(store))))
    evaluate_all(store)
    child = store.get_job("p:0")
    assert child is not None
    plan = Plan(
        updates=(replace(child, status=S.SUCCEEDED, stopped_at=50),),
        evaluated=tuple((j.job_id, j.version) for j in _all(store)),
    )
    assert store.commit(plan) == {"p:0"}
    parent = store.get_job("p")
    assert parent is not None
    assert parent.array_status_summary == summary(RUNNABLE=1, SUCCEEDED=1)
    # The dependent was marked evaluated in the same plan, yet its dependency just ended.
    assert flagged_ids(store) == ["p", "after-child"]
    dependent = store.get_job("after-child")
    assert dependent is not None
    assert dependent.version == 3


def test_commit_parent_and_child_together_leaves_parent_flagged(store: AnyStore) -> None:
    parent, child = store.insert_jobs(a_submitted_array("p", 1))
    plan = Plan(updates=(replace(child, status=S.RUNNABLE), replace(parent, status=S.PENDING)))
    assert store.commit(plan) == {"p", "p:0"}
    stored = store.get_job("p")
    assert stored is not None
    assert stored.status is S.PENDING
    assert stored.version == 3  # the plan's write, then the child's count change
    assert stored.array_status_summary == summary(RUNNABLE=1)
    assert flagged_ids(store) == ["p"]


def test_dependents_are_flagged_on_any_terminal_write_path(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job("dep"), a_submitted_job("waiter", wait_for=("dep", "dep"))])
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.FAILED, stopped_at=1))
    assert flagged_ids(store) == ["dep", "waiter"]
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.FAILED, status_reason="still failed"))
    assert flagged_ids(store) == ["dep"]  # no status change, dependents left alone


def _all(store: AnyStore) -> list[Job]:
    jobs: list[Job] = []
    for top in store.list_jobs(JobQuery(job_queue="q1", limit=1000)):
        jobs.append(top)
        if top.is_array_parent:
            jobs.extend(store.list_jobs(JobQuery(array_job_id=top.job_id, limit=1000)))
    return jobs


# -- snapshot --------------------------------------------------------------------------------


def test_snapshot(store: AnyStore) -> None:
    store.put_compute_environment(a_complete_compute_environment("ce-b"), create=True)
    store.put_compute_environment(a_complete_compute_environment("ce-a"), create=True)
    store.put_job_queue(a_complete_queue("q2"), create=True)
    store.put_job_queue(a_complete_queue("q1"), create=True)
    store.put_scheduling_policy(a_complete_scheduling_policy("fair"), create=True)
    store.insert_jobs(
        [
            a_submitted_job("r1", status=S.RUNNABLE),
            a_submitted_job("r2", status=S.RUNNABLE),
            a_submitted_job("r3", status=S.RUNNABLE),
            a_submitted_job("r4", status=S.RUNNABLE, job_queue="q2"),
            a_submitted_job("s1", status=S.STARTING),
            a_submitted_job("run1", status=S.RUNNING),
            a_submitted_job("done", status=S.SUCCEEDED),
            a_submitted_job("waiter", wait_for=("done", "s1", "unknown")),
            a_submitted_job("other-queue", status=S.RUNNABLE, job_queue="deleted-queue"),
        ]
    )
    evaluate_all(store)
    # A retry jumps ahead: run_order is what orders the RUNNABLE heads, then seq.
    store.mutate_job("r3", lambda j: replace(j, run_order=0))
    store.mutate_job("waiter", lambda j: replace(j, status_reason="look again"))

    snap = store.snapshot(SnapshotLimits(runnable_per_queue=2, to_evaluate=10))
    assert list(snap.compute_environments) == ["ce-a", "ce-b"]
    assert snap.compute_environments["ce-a"] == a_complete_compute_environment("ce-a")
    assert [q.name for q in snap.job_queues] == ["q1", "q2"]
    assert snap.scheduling_policies == {
        a_complete_scheduling_policy("fair").arn: a_complete_scheduling_policy("fair")
    }
    assert [j.job_id for j in snap.active] == ["s1", "run1"]
    assert {name: [j.job_id for j in jobs] for name, jobs in snap.runnable.items()} == {
        "q1": ["r3", "r1"],
        "q2": ["r4"],
    }
    assert [j.job_id for j in snap.to_evaluate] == ["r3", "waiter"]
    assert snap.dependency_status == {"done": S.SUCCEEDED, "s1": S.STARTING}
    assert snap.host_limits == {}
    assert store.active_jobs() == list(snap.active)

    bounded = store.snapshot(SnapshotLimits(runnable_per_queue=1, to_evaluate=1))
    assert [j.job_id for j in bounded.runnable["q1"]] == ["r3"]
    assert [j.job_id for j in bounded.to_evaluate] == ["r3"]
    assert bounded.dependency_status == {}


def test_snapshot_to_evaluate_is_oldest_first(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job(f"j{i}") for i in range(6)])
    evaluate_all(store)
    for job_id in ("j4", "j1", "j5"):
        store.mutate_job(job_id, lambda j: replace(j, status_reason="x"))
    snap = store.snapshot(SnapshotLimits(to_evaluate=2))
    assert [j.job_id for j in snap.to_evaluate] == ["j1", "j4"]
