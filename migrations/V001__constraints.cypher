// Keys of the data model (DESIGN.md §3) and the indexes the platform's lookups use.
CREATE CONSTRAINT instruction_id IF NOT EXISTS FOR (n:Instruction) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT val_example_id IF NOT EXISTS FOR (n:ValExample) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT pool_name IF NOT EXISTS FOR (n:Pool) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT target_name IF NOT EXISTS FOR (n:Target) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT feature_run_id IF NOT EXISTS FOR (n:FeatureRun) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT instruction_graph_id IF NOT EXISTS FOR (n:InstructionGraph) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT selection_job_id IF NOT EXISTS FOR (n:SelectionJob) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT dataset_name IF NOT EXISTS FOR (n:Dataset) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT dataset_version_key IF NOT EXISTS FOR (n:DatasetVersion) REQUIRE (n.dataset, n.version) IS UNIQUE;
CREATE INDEX similar_graph IF NOT EXISTS FOR ()-[r:SIMILAR]-() ON (r.graph);
CREATE INDEX selection_job_status IF NOT EXISTS FOR (n:SelectionJob) ON (n.status);
CREATE INDEX feature_run_status IF NOT EXISTS FOR (n:FeatureRun) ON (n.status);
CREATE INDEX instruction_source IF NOT EXISTS FOR (n:Instruction) ON (n.source);
