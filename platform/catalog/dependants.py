"""What depends on a pool, target, feature run or graph: the lineage a delete must not orphan.

Feature runs depend on their pool (and on the targets they featurised), graphs on their feature
run, selection jobs on what they ``USED`` (and on their pool by name), published versions on the
pool, targets, run and graph their lineage names, evaluations on the target they scored on. Tombstones (``status: 'deleted'``) depend on
nothing: they are what is left once something was deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradwalk.platform.shared.schemas import DependantsPublic, VersionRef
from gradwalk.statuses import JobStatus

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore

ACTIVE_JOB = (JobStatus.QUEUED, JobStatus.RUNNING)

_LIVE = "status <> 'deleted'"

# Each returns one row: runs, graphs, versions (as {dataset, version}) and jobs (as {id, status}).
_QUERIES = {
    "pool": f"""
        OPTIONAL MATCH (fr:FeatureRun)-[:OF_POOL]->(:Pool {{name: $key}}) WHERE fr.{_LIVE}
        OPTIONAL MATCH (g:InstructionGraph)-[:BUILT_FROM]->(fr) WHERE g.{_LIVE}
        WITH collect(DISTINCT fr.id) AS runs, collect(DISTINCT g.id) AS graphs
        OPTIONAL MATCH (:Dataset)-[:HAS_VERSION]->(v:DatasetVersion {{pool: $key}})
        WITH runs, graphs, collect(DISTINCT {{dataset: v.dataset, version: v.version}}) AS versions
        OPTIONAL MATCH (j:SelectionJob {{pool: $key}})
        RETURN runs, graphs, versions, collect(DISTINCT {{id: j.id, status: j.status}}) AS jobs""",
    "target": f"""
        OPTIONAL MATCH (fr:FeatureRun)-[:FOR_TARGET]->(:Target {{name: $key}}) WHERE fr.{_LIVE}
        WITH collect(DISTINCT fr.id) AS runs, [] AS graphs
        OPTIONAL MATCH (:Dataset)-[:HAS_VERSION]->(v:DatasetVersion) WHERE $key IN v.targets
        WITH runs, graphs, collect(DISTINCT {{dataset: v.dataset, version: v.version}}) AS versions
        OPTIONAL MATCH (j:SelectionJob) WHERE $key IN j.targets
        RETURN runs, graphs, versions, collect(DISTINCT {{id: j.id, status: j.status}}) AS jobs""",
    "feature run": f"""
        OPTIONAL MATCH (g:InstructionGraph)-[:BUILT_FROM]->(:FeatureRun {{id: $key}}) WHERE g.{_LIVE}
        WITH [] AS runs, collect(DISTINCT g.id) AS graphs
        OPTIONAL MATCH (:Dataset)-[:HAS_VERSION]->(v:DatasetVersion {{feature_run: $key}})
        WITH runs, graphs, collect(DISTINCT {{dataset: v.dataset, version: v.version}}) AS versions
        OPTIONAL MATCH (j:SelectionJob)-[:USED]->(:FeatureRun {{id: $key}})
        RETURN runs, graphs, versions, collect(DISTINCT {{id: j.id, status: j.status}}) AS jobs""",
    "graph": """
        OPTIONAL MATCH (:Dataset)-[:HAS_VERSION]->(v:DatasetVersion {graph: $key})
        WITH [] AS runs, [] AS graphs, collect(DISTINCT {dataset: v.dataset, version: v.version}) AS versions
        OPTIONAL MATCH (j:SelectionJob)-[:USED]->(:InstructionGraph {id: $key})
        RETURN runs, graphs, versions, collect(DISTINCT {id: j.id, status: j.status}) AS jobs""",
}

# A target's evaluations scored its test part; a pool's are its versions' (already dependants).
_EVALUATIONS = "MATCH (e:Evaluation {target: $key}) RETURN e.id AS id, e.status AS status ORDER BY id"

KINDS = tuple(_QUERIES)


def dependants(store: GraphStore, kind: str, key: str) -> DependantsPublic:
    """Everything that depends on ``kind`` ``key`` (a pool or target name, a run or graph id)."""
    row = store.read(_QUERIES[kind], {"key": key})[0]
    versions = sorted((v["dataset"], v["version"]) for v in row["versions"] if v["dataset"] is not None)
    jobs = sorted((j["id"], j["status"]) for j in row["jobs"] if j["id"] is not None)
    evaluations = [(e["id"], e["status"]) for e in store.read(_EVALUATIONS, {"key": key})] if kind == "target" else []
    return DependantsPublic(
        feature_runs=sorted(row["runs"]), graphs=sorted(row["graphs"]),
        versions=[VersionRef(dataset=d, version=n) for d, n in versions],
        jobs=[j for j, _ in jobs], evaluations=[e for e, _ in evaluations],
        active_jobs=[j for j, status in jobs + evaluations if status in ACTIVE_JOB])
