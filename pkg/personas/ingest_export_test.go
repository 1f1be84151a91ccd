package personas

import "strings"

// IngestStatement is insertActions for an untokened batch with error rows,
// with its daily rollups (issue 11) or, rollups false, without them: the
// same persona update, insert and hourly bucket, so BenchmarkIngestRollups
// measures what keeping the rollups at ingest costs. Its arguments are
// Bind's for such a batch.
func IngestStatement(rollups bool) string {
	q := insertActionsSQL(false, true)
	if !rollups {
		q = strings.Replace(q, actionToolRollupCTE+actionErrorRollupCTEs, "", 1)
	}
	return toPostgresPlaceholders(q)
}
