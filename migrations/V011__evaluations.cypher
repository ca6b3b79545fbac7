// A target's held-out test part (platform/intake/pools.py) and the evaluations of dataset versions
// (platform/versions/evaluations.py), each keyed like the records beside them.
CREATE CONSTRAINT test_example_id IF NOT EXISTS FOR (n:TestExample) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT evaluation_id IF NOT EXISTS FOR (n:Evaluation) REQUIRE n.id IS UNIQUE;
