// The walk reads a graph's neighbour table whole, a page of rows per node (graph/knn/pages.py):
// (:NeighborPage {graph, first, rows, targets}) per edge-write batch replaces (:NeighborList) per row.
// A graph whose lists go here has no pages: it is read through its edges (same picks, slower, with a
// warning) until `gradwalk graph build --rebuild` writes them.
CREATE CONSTRAINT neighbor_page_key IF NOT EXISTS FOR (n:NeighborPage) REQUIRE (n.graph, n.first) IS UNIQUE;
MATCH (l:NeighborList) CALL (l) { DELETE l } IN TRANSACTIONS OF 10000 ROWS;
DROP CONSTRAINT neighbor_list_key IF EXISTS;
