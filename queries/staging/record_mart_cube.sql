-- name: record_mart_cube
-- description: Register a cube just built: its dimensions, kind ('cells' or 'first') and number of cells.
-- params: cube, dims, cube_kind
INSERT INTO mart_cube BY NAME
SELECT $cube AS cube, $dims::VARCHAR[] AS dims, $cube_kind AS kind, count(*)::BIGINT AS cells
FROM mart_cell
WHERE cube = $cube;
