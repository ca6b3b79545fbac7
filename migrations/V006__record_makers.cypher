// Who made a pool, target, feature run or graph (created_by, a token's name): curators delete what
// they made (platform/catalog/deletion.py). Records made before makers were recorded have none, so only an
// admin token deletes them.
CREATE INDEX pool_created_by IF NOT EXISTS FOR (n:Pool) ON (n.created_by);
CREATE INDEX target_created_by IF NOT EXISTS FOR (n:Target) ON (n.created_by);
CREATE INDEX feature_run_created_by IF NOT EXISTS FOR (n:FeatureRun) ON (n.created_by);
CREATE INDEX instruction_graph_created_by IF NOT EXISTS FOR (n:InstructionGraph) ON (n.created_by);
// Each import's record in its collection's history (platform/intake/import_history.py), MERGEd by id.
CREATE CONSTRAINT import_record_id IF NOT EXISTS FOR (n:ImportRecord) REQUIRE n.import_id IS UNIQUE;
// Feature runs are listed by pool name, also once the pool is gone and the run is a tombstone.
CREATE INDEX feature_run_pool IF NOT EXISTS FOR (n:FeatureRun) ON (n.pool);
