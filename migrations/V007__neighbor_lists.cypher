// Beside each row's SIMILAR edges of a graph, its sorted neighbour rows as one array (graph/knn/pages.py),
// read by the walk one record per list; and the lease a build block's writer holds (graph/knn/build.py).
CREATE CONSTRAINT neighbor_list_key IF NOT EXISTS FOR (n:NeighborList) REQUIRE (n.graph, n.row) IS UNIQUE;
CREATE CONSTRAINT graph_block_key IF NOT EXISTS FOR (n:GraphBlock) REQUIRE (n.graph, n.index) IS UNIQUE;
