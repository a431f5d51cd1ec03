/**
 * The partial sync metadata the specification's backfill snippet writes (statuses, retry counts
 * and vector versions only), with one collection already synced and one failed by an operator.
 */
export function specBackfillShape(at = new Date('2024-01-01T00:00:00Z')): Record<string, unknown> {
  return {
    overallStatus: 'pending',
    collections: {
      tools: { status: 'pending', retryCount: 0, vectorVersion: 0 },
      functionality: { status: 'synced', retryCount: 0, vectorVersion: 3 },
      usecases: { status: 'failed', retryCount: 2, vectorVersion: 1 },
      interface: { status: 'pending', retryCount: 0, vectorVersion: 0 },
    },
    lastModifiedFields: [],
    createdAt: at,
    updatedAt: at,
  };
}
