import { KNOWN_INTERFACES, PRICING_MODELS } from '../models/tool-vocabulary.js';

/** A small seeded generator (mulberry32), so that `seed --seed N` is repeatable. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PREFIXES = ['Swift', 'Bright', 'Nimbus', 'Quartz', 'Atlas', 'Pixel', 'Echo', 'Vector', 'Orbit', 'Lumen', 'Cobalt', 'Harbor', 'Summit', 'Prism', 'Relay', 'Beacon'];
const SUFFIXES = ['Desk', 'Flow', 'Base', 'Lens', 'Forge', 'Hub', 'Kit', 'Stack', 'Sync', 'Board', 'Works', 'Pilot', 'Scope', 'Vault', 'Studio', 'Link'];

const CATEGORIES = [
  { category: 'project-management', does: ['plan sprints', 'track issues', 'visualise roadmaps', 'assign tasks'], uses: ['run an agile team', 'coordinate a product launch', 'keep a backlog groomed'] },
  { category: 'database', does: ['store relational data', 'run SQL queries', 'replicate across regions', 'back up snapshots'], uses: ['back a web application', 'run analytics queries', 'migrate from a legacy database'] },
  { category: 'design', does: ['design interfaces', 'prototype interactions', 'share design systems', 'export assets'], uses: ['design a mobile app', 'hand off designs to developers', 'run a design review'] },
  { category: 'observability', does: ['collect metrics', 'search logs', 'trace requests', 'alert on anomalies'], uses: ['debug a production incident', 'monitor service health', 'find slow endpoints'] },
  { category: 'developer-tools', does: ['format code', 'lint pull requests', 'generate API clients', 'run tests in parallel'], uses: ['keep a codebase consistent', 'speed up code review', 'ship a public SDK'] },
  { category: 'communication', does: ['host video calls', 'send team messages', 'record meetings', 'translate conversations'], uses: ['run a remote stand-up', 'support customers in real time', 'onboard new hires'] },
  { category: 'ai-assistant', does: ['summarise documents', 'answer questions over files', 'draft emails', 'write code suggestions'], uses: ['research a topic quickly', 'triage an inbox', 'prototype a feature'] },
  { category: 'analytics', does: ['build dashboards', 'model funnels', 'segment users', 'schedule reports'], uses: ['measure product adoption', 'report weekly metrics', 'find churn signals'] },
] as const;

const QUALITIES = ['fast', 'open', 'collaborative', 'lightweight', 'self-hosted', 'privacy-first', 'scalable', 'keyboard-driven'];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function some<T>(random: () => number, items: readonly T[], min: number, max: number): T[] {
  const count = min + Math.floor(random() * (max - min + 1));
  const shuffled = [...items].sort(() => random() - 0.5);
  return shuffled.slice(0, count);
}

export interface SeedTool {
  id: string;
  name: string;
  description: string;
  longDescription?: string;
  category: string;
  tags: string[];
  url: string;
  pricing: string;
  functionality: string[];
  useCases: string[];
  interface: string[];
}

/** `count` realistic, varied tools; ids are unique within the call (`index` keeps them apart). */
export function generateTools(count: number, random: () => number, idPrefix = ''): SeedTool[] {
  return Array.from({ length: count }, (_, index) => {
    const name = `${pick(random, PREFIXES)} ${pick(random, SUFFIXES)}`;
    const kind = pick(random, CATEGORIES);
    const quality = pick(random, QUALITIES);
    const functionality = some(random, kind.does, 2, 4);
    const slug = `${idPrefix}${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${index + 1}`;
    return {
      id: slug,
      name,
      description: `A ${quality} ${kind.category.replace(/-/g, ' ')} tool to ${functionality[0] ?? 'work'} and more.`,
      ...(random() < 0.5 ? { longDescription: `${name} helps teams ${functionality.join(', ')}. It is ${quality} and integrates with the tools they already use.` } : {}),
      category: kind.category,
      tags: some(random, [kind.category, quality, ...kind.category.split('-')], 2, 4),
      url: `https://example.com/${slug}`,
      pricing: pick(random, PRICING_MODELS),
      functionality,
      useCases: some(random, kind.uses, 1, 3),
      interface: some(random, KNOWN_INTERFACES, 1, 3),
    };
  });
}
