// A record keeps its own fields (platform/intake/ingest.py, platform/intake/pools.py): source and original_id
// are filter keys; every record read is an ORIGIN edge to the (:Import) that read it.
CREATE INDEX instruction_original_id IF NOT EXISTS FOR (n:Instruction) ON (n.original_id);
CREATE INDEX val_example_source IF NOT EXISTS FOR (n:ValExample) ON (n.source);
CREATE CONSTRAINT import_id IF NOT EXISTS FOR (n:Import) REQUIRE n.id IS UNIQUE;
CREATE INDEX import_file IF NOT EXISTS FOR (n:Import) ON (n.file);
// Before, `source` held the name of the file a row was imported from: that is the import's
// provenance, so it moves to the (:Import) node of the row's first import, and the row's own
// source (which that import dropped) stays unknown until the file is imported again.
MATCH (n) WHERE (n:Instruction OR n:ValExample) AND n.source IS NOT NULL AND n.import_id IS NOT NULL
  AND n.original_id IS NULL AND n.metadata IS NULL AND NOT EXISTS { (n)-[:ORIGIN]->() }
OPTIONAL MATCH (n)-[r:IN_POOL|OF_TARGET]->(o) WHERE r.import_id = n.import_id
WITH n, head(collect(o.name)) AS name
MERGE (imp:Import {id: n.import_id})
  ON CREATE SET imp.file = n.source, imp.name = name, imp.migrated = true,
                imp.kind = CASE WHEN n:Instruction THEN 'pool' ELSE 'target' END
CREATE (n)-[:ORIGIN {at: n.source, key: '[null, null]'}]->(imp)
REMOVE n.source;
