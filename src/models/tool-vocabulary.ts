/** Vocabularies and limits of a tool's business fields. */

/** The business fields of a tool: what `lastModifiedFields` may list (never sync metadata or timestamps). */
export const BUSINESS_FIELDS = [
  'id', 'name', 'description', 'longDescription', 'category', 'tags', 'url', 'pricing', 'functionality', 'useCases', 'interface',
] as const;
export type BusinessField = (typeof BUSINESS_FIELDS)[number];

export const PRICING_MODELS = ['free', 'freemium', 'paid', 'open-source', 'enterprise'] as const;
export type PricingModel = (typeof PRICING_MODELS)[number];

/**
 * Interfaces the product knows how to display. The field accepts any lowercase kebab-case token,
 * so a new kind of interface needs no release of this package; these are the common ones.
 */
export const KNOWN_INTERFACES = [
  'web',
  'cli',
  'api',
  'sdk',
  'desktop',
  'mobile',
  'ide-extension',
  'browser-extension',
  'chat',
] as const;

/** Lowercase words joined by single hyphens: `my-tool`, `ide-extension`, `v8`. */
export const KEBAB_CASE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export const TOOL_LIMITS = {
  id: 100,
  name: 200,
  description: 2_000,
  longDescription: 20_000,
  category: 100,
  url: 2_048,
  tag: 100,
  interface: 50,
  listItem: 1_000,
} as const;
