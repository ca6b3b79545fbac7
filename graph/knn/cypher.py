"""The Cypher text of the instruction graph, in one place.

The lifecycle's queries share one condition (``CURRENT``: only the build that owns the graph may
write), and reading them side by side is how their locking and idempotence are checked. The
modules that run them: build (claim, blocks, finish, delete), edge_writer (edge batches,
block leases), records (read, list), neighbors and pages (neighbour lists and pages).
"""

FEATURE_RUN = "MATCH (r:FeatureRun {id: $run}) RETURN r.status AS status, r.rows AS rows"

MISSING_INSTRUCTIONS = """
UNWIND $ids AS id
WITH id WHERE NOT EXISTS { MATCH (:Instruction {id: id}) }
RETURN id LIMIT 5"""

# MERGE serialises racing builders on the id's constraint; setting a property takes the node's
# lock, so the status read after it is the latest committed one.
CLAIM_GRAPH = """
MERGE (g:InstructionGraph {id: $graph})
SET g._lock = true
REMOVE g._lock
RETURN g.status AS status, duration.inSeconds(g.heartbeat_at, datetime()).seconds AS idle_s,
       g.extend_from IS NOT NULL AS extending"""

# Edges of this id left by a writer that raced a deletion make every block "started", so its
# writes delete before they create.
INIT_GRAPH = """
MATCH (g:InstructionGraph {id: $graph}), (r:FeatureRun {id: $run})
MERGE (g)-[:BUILT_FROM]->(r)
WITH g, EXISTS { ()-[:SIMILAR {graph: $graph}]->() } AS leftover
SET g.feature_run = $run, g.k = $k, g.tau = $tau, g.method = 'exact', g.nodes = $nodes,
    g.block_rows = $block_rows, g.blocks = size($block_edges), g.row_order = $row_order,
    g.block_edges = CASE WHEN leftover THEN [e IN $block_edges | $started] ELSE $block_edges END,
    g.blocks_done = 0, g.edges = 0, g.status = 'building', g.build_id = $build, g.error = null,
    g.built_at = null, g.build_s = null, g.created_at = coalesce(g.created_at, datetime()),
    g.started_at = datetime(), g.heartbeat_at = datetime(), g.updated_at = datetime()"""

# A new build id refuses every write of the one before, so the block leases its writers held
# are released: the resumed build need not wait them out (a failed block's lease ran 120 s).
RESUME_GRAPH = """
MATCH (g:InstructionGraph {id: $graph})
SET g.status = 'building', g.build_id = $build, g.error = null, g.started_at = datetime(),
    g.heartbeat_at = datetime(), g.updated_at = datetime()
WITH g
MATCH (b:GraphBlock {graph: $graph}) WHERE b.index >= 0 AND b.owner IS NOT NULL
SET b.owner = null, b.lease_until = null"""

# The build (or extension, extend.py) that may write.
CURRENT = "g.status IN ['building', 'extending'] AND g.build_id = $build"

READ_GRAPH = "MATCH (g:InstructionGraph {id: $graph}) RETURN g {.*} AS graph"

LIST_GRAPHS = """
MATCH (g:InstructionGraph)
WHERE $run IS NULL OR g.feature_run = $run
RETURN g {.*} AS graph ORDER BY g.id"""

# A block's writer holds a lease on its (:GraphBlock) node. Under the graph node's lock a claim
# finds the block 'done' (its edges recorded), 'held' (another owner's lease still runs) or takes it
# ('owned'); only the first owner of a never-started block (block_edges -1, now -2) is 'fresh': its
# sources have no edges of this graph yet. A lease that ran out is taken over (not fresh).
CLAIM_BLOCK = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
MERGE (b:GraphBlock {{graph: $graph, index: $block}})
WITH g, b, g.block_edges[$block] AS state,
     b.owner IS NOT NULL AND b.owner <> $owner AND b.lease_until > datetime() AS held
WITH g, b, state, CASE WHEN state >= 0 THEN 'done' WHEN held THEN 'held' ELSE 'owned' END AS outcome
SET b.owner = CASE outcome WHEN 'owned' THEN $owner ELSE b.owner END,
    b.lease_until = CASE outcome WHEN 'owned' THEN datetime() + duration({{milliseconds: $lease_ms}})
                    ELSE b.lease_until END,
    b.claims = coalesce(b.claims, 0) + CASE outcome WHEN 'owned' THEN 1 ELSE 0 END,
    b.refused = coalesce(b.refused, 0) + CASE outcome WHEN 'held' THEN 1 ELSE 0 END,
    b.late = coalesce(b.late, 0) + CASE outcome WHEN 'done' THEN 1 ELSE 0 END,
    g.block_edges = [i IN range(0, size(g.block_edges) - 1) |
                     CASE WHEN outcome = 'owned' AND i = $block AND state = $missing THEN $started
                     ELSE g.block_edges[i] END],
    g.heartbeat_at = datetime()
RETURN outcome, outcome = 'owned' AND state = $missing AS fresh, state AS edges"""

# A lease is renewed while its owner works; the build's heartbeat with it.
RENEW_LEASE = f"""
MATCH (b:GraphBlock {{graph: $graph, index: $block}}) WHERE b.owner = $owner
SET b.lease_until = datetime() + duration({{milliseconds: $lease_ms}})
WITH b
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g.heartbeat_at = datetime()
RETURN b.owner AS owner"""

# The last statement of every edge batch: it locks the block node, so a claim that takes the lease
# over waits for this commit, and the batch commits only while its writer still owns the block.
OWNS_BLOCK = """
MATCH (b:GraphBlock {graph: $graph, index: $block})
SET b._lock = true
REMOVE b._lock
RETURN b.owner = $owner AS owned"""

# What a finished block recorded, whatever became of its build since.
BLOCK_EDGES = "MATCH (g:InstructionGraph {id: $graph}) RETURN g.status AS status, g.block_edges[$block] AS edges"

# Before a batch's edges are created again: remove its source nodes' out-edges of this graph,
# unless this build is no longer the one building it.
CLEAR_SOURCES = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
UNWIND $nodes[..$source_count] AS id
MATCH (a:Instruction {{id: id}})-[r:SIMILAR {{graph: $graph}}]->()
DELETE r"""

# One batch: each instruction it touches is looked up once ($nodes: the batch's sources first,
# then the other targets); source s has the edges $offsets[s] until $offsets[s + 1], each naming
# its target by position in $nodes. No row unless this build may write; edges = 0 when an
# instruction is missing.
CREATE_EDGES = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
CALL {{
  UNWIND range(0, size($nodes) - 1) AS i
  MATCH (n:Instruction {{id: $nodes[i]}})
  WITH i, n ORDER BY i
  WITH collect(n) AS nodes WHERE size(nodes) = size($nodes)
  UNWIND range(0, $source_count - 1) AS s
  UNWIND range($offsets[s], $offsets[s + 1] - 1) AS j
  WITH nodes[s] AS a, nodes[$targets[j]] AS b, $weights[j] AS w
  CREATE (a)-[:SIMILAR {{graph: $graph, w: w}}]->(b)
  RETURN count(*) AS edges
}}
RETURN edges"""

MARK_BLOCK = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
WITH g
MATCH (b:GraphBlock {{graph: $graph, index: $block}}) WHERE b.owner = $owner
SET b.owner = null, b.lease_until = null,
    g.block_edges = [i IN range(0, size(g.block_edges) - 1) |
                     CASE WHEN i = $block THEN $edges ELSE g.block_edges[i] END]
SET g.blocks_done = size([e IN g.block_edges WHERE e >= 0]), g.heartbeat_at = datetime(),
    g.updated_at = datetime()
RETURN g.blocks_done AS done"""

FINISH_GRAPH = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
WITH g WHERE all(e IN g.block_edges WHERE e >= 0)
SET g.status = 'ready', g.edges = reduce(total = 0, e IN g.block_edges | total + e), g.build_id = null,
    g.built_at = datetime(), g.updated_at = datetime(),
    g.build_s = duration.inSeconds(g.started_at, datetime()).milliseconds / 1000.0
RETURN g.id AS id"""

FAIL_GRAPH = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g.status = 'failed', g.error = $error, g.updated_at = datetime()"""

MARK_DELETING = """
MATCH (g:InstructionGraph {id: $graph})
SET g.status = 'deleting', g.updated_at = datetime()
RETURN g.id AS id"""

DELETE_EDGES = """
MATCH ()-[r:SIMILAR {graph: $graph}]->()
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS deleted"""

# A graph's neighbour pages and block leases go with its edges (MATCH the key's first property:
# the constraint's index serves it).
DELETE_PAGES = """
MATCH (l:NeighborPage) WHERE l.graph = $graph AND l.first IS NOT NULL
WITH l LIMIT $limit
DELETE l
RETURN count(*) AS deleted"""

DELETE_BLOCKS = "MATCH (b:GraphBlock) WHERE b.graph = $graph AND b.index IS NOT NULL DELETE b"

# A graph a selection job used stays as a record (its edges gone) so provenance still resolves.
DROP_GRAPH = """
MATCH (g:InstructionGraph {id: $graph})
WITH g, EXISTS { (g)<-[:USED]-() } AS used
FOREACH (_ IN CASE WHEN used THEN [] ELSE [1] END | DETACH DELETE g)
FOREACH (_ IN CASE WHEN used THEN [1] ELSE [] END |
  SET g.status = 'deleted', g.edges = 0, g.deleted_at = datetime(), g.updated_at = datetime())"""

# Out-edges of many nodes as parallel lists (unordered: the caller sorts what it needs).
NEIGHBORS = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})
CALL {
  WITH a
  MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
  RETURN collect(b.id) AS targets, collect(r.w) AS weights
}
RETURN id, targets, weights"""

# The walk's reads: each list ordered by descending w, without the weights, plus the positions
# whose w equals the one before (the client orders those runs by row index, as graph.knn.topk does).
# All lists come back in one record: the driver's cost is per record (docs/measurements.md, "Neighbour reads").
NEIGHBOR_ORDER = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})
CALL {
  WITH a
  MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
  WITH b, r.w AS w ORDER BY w DESC
  RETURN collect(b.id) AS targets, collect(w) AS weights
}
WITH id, targets, [i IN range(1, size(weights) - 1) WHERE weights[i] = weights[i - 1]] AS ties
RETURN collect(id) AS sources, collect(targets) AS targets, collect(ties) AS ties"""


# Neighbour pages (pages.py): store a batch's rows as one page (after deleting any page that
# overlaps them), or read the pages that start in [lo, hi).
SET_NEIGHBOR_PAGE = """
CALL () {
  MATCH (old:NeighborPage)
  WHERE old.graph = $graph AND $first - $max_rows < old.first < $first + $rows AND old.first + old.rows > $first
  DELETE old
}
CREATE (:NeighborPage {graph: $graph, first: $first, rows: $rows, targets: $targets})"""

READ_NEIGHBOR_PAGES = """
MATCH (p:NeighborPage) WHERE p.graph = $graph AND $lo <= p.first < $hi
RETURN p.first AS first, p.rows AS rows, p.targets AS targets"""

# Whether a graph's pages index the caller's row order (pages.row_order), and its k.
LISTS_MATCH = "MATCH (g:InstructionGraph {id: $graph}) RETURN g.row_order = $row_order AS usable, g.k AS k"

# An extension (extend.py) claims a ready graph, a failed extension, or one silent for
# $stale_after_s; the node lock makes the check and the claim one step, so two never both run.
# extend_delta counts, per block of the grown layout, the edges old rows gained or lost so far.
CLAIM_EXTEND = """
MATCH (g:InstructionGraph {id: $graph})
SET g._lock = true
REMOVE g._lock
WITH g, g.status AS was, coalesce(duration.inSeconds(g.heartbeat_at, datetime()).seconds, 0) AS idle_s
WHERE was = 'ready' OR (was IN ['extending', 'failed'] AND g.extend_from IS NOT NULL
                        AND (was = 'failed' OR idle_s >= $stale_after_s))
SET g.status = 'extending', g.build_id = $build, g.error = null, g.extension_refused = null,
    g.heartbeat_at = datetime(), g.updated_at = datetime(), g.extend_started_at = datetime(), g.row_order = null,
    g.extend_delta = CASE WHEN was = 'ready' THEN [i IN range(1, $blocks) | 0] ELSE g.extend_delta END,
    g.extend_from = CASE WHEN was = 'ready' THEN g.nodes ELSE g.extend_from END
RETURN was"""

# An extension refused before its claim leaves the graph as it was, so its status cannot say so:
# the reason is kept for whoever waits on it, until the next extension is asked for or claimed.
REFUSE_EXTEND = """
MATCH (g:InstructionGraph {id: $graph})
SET g.extension_refused = $reason"""

CLEAR_REFUSAL = "MATCH (g:InstructionGraph {id: $graph}) REMOVE g.extension_refused"

# The extension's own write lease, on a block node of its own (index -1): the edge writer commits
# only while its owner holds it, and renewing it keeps the extension's heartbeat alive.
TAKE_EXTENSION_LEASE = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
MERGE (b:GraphBlock {{graph: $graph, index: $block}})
SET b.owner = $owner, b.lease_until = datetime() + duration({{milliseconds: $lease_ms}}),
    b.claims = coalesce(b.claims, 0) + 1
RETURN b.owner AS owner"""

# One batch of old rows whose lists new rows entered: their displaced edges deleted and the
# entering ones created, with the per-block edge change, in one transaction.
APPLY_ENTRIES = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g.extend_delta = [i IN range(0, size(g.extend_delta) - 1) | g.extend_delta[i] + $delta[i]],
    g.heartbeat_at = datetime()
WITH g
CALL {{
  UNWIND $changes AS c
  MATCH (:Instruction {{id: c.source}})-[r:SIMILAR {{graph: $graph}}]->(b:Instruction)
  WHERE b.id IN c.drop
  DELETE r
  RETURN count(*) AS dropped
}}
CALL {{
  UNWIND $changes AS c
  MATCH (a:Instruction {{id: c.source}})
  UNWIND range(0, size(c.add) - 1) AS j
  MATCH (b:Instruction {{id: c.add[j]}})
  CREATE (a)-[:SIMILAR {{graph: $graph, w: c.w[j]}}]->(b)
  RETURN count(*) AS added
}}
RETURN dropped, added"""

FINISH_EXTEND = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
WITH g, [i IN range(0, size($block_edges) - 1) | $block_edges[i] + g.extend_delta[i]] AS blocks
SET g.status = 'ready', g.nodes = $nodes, g.blocks = size(blocks), g.block_edges = blocks,
    g.blocks_done = size(blocks), g.edges = reduce(total = 0, e IN blocks | total + e),
    g.generations = $generations, g.extend_from = null, g.extend_delta = null, g.build_id = null,
    g.extended_at = datetime(), g.updated_at = datetime(),
    g.extend_s = duration.inSeconds(g.extend_started_at, datetime()).milliseconds / 1000.0
RETURN g.id AS id"""

# An extension's reads of old rows: each list's lowest cosine and length (cheap: two numbers a
# row), then, of the rows new rows enter, only the edges a new row can displace (w <= $cut).
LIST_FLOORS = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})
CALL {
  WITH a
  OPTIONAL MATCH (a)-[r:SIMILAR {graph: $graph}]->()
  RETURN min(r.w) AS low, count(r) AS n
}
RETURN collect(low) AS low, collect(n) AS n"""

LOW_EDGES = """
UNWIND $rows AS row
MATCH (a:Instruction {id: row.id})
CALL {
  WITH a, row
  OPTIONAL MATCH (a)-[r:SIMILAR {graph: $graph}]->(b) WHERE r.w <= row.cut
  RETURN collect(b.id) AS targets, collect(r.w) AS weights
}
RETURN collect(targets) AS targets, collect(weights) AS weights"""
