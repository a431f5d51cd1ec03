import type mongoose from 'mongoose';

interface PathDescription {
  instance: string;
  caster?: string;
  enum?: unknown[];
  options: Record<string, unknown>;
  validators: string[];
  schema?: SchemaDescription;
}

export interface SchemaDescription {
  paths: Record<string, PathDescription>;
  indexes: unknown;
  options: Record<string, unknown>;
}

const DECLARED_OPTIONS = ['required', 'min', 'max', 'maxlength', 'trim', 'default', 'match', 'unique'] as const;

function describeOption(value: unknown): unknown {
  if (typeof value === 'function') return `function ${value.name}`;
  if (value instanceof RegExp) return value.source;
  if (Array.isArray(value)) return value.map(describeOption);
  return value;
}

/** Everything a schema declares that a user relies on, as plain data that can be compared. */
export function describeSchema(schema: mongoose.Schema): SchemaDescription {
  const paths: Record<string, PathDescription> = {};
  schema.eachPath((path, type) => {
    const options = type.options as Record<string, unknown>;
    const nested = (type as { schema?: mongoose.Schema }).schema;
    const enumValues = (type as { enumValues?: unknown[] }).enumValues;
    const caster = (type as { embeddedSchemaType?: { instance?: string } }).embeddedSchemaType;
    const description: PathDescription = {
      instance: type.instance,
      options: Object.fromEntries(DECLARED_OPTIONS.filter((key) => key in options).map((key) => [key, describeOption(options[key])])),
      validators: (type as unknown as { validators: { type?: string; message?: unknown }[] }).validators.map(
        (validator) => `${validator.type ?? '?'}: ${String(describeOption(validator.message))}`,
      ),
    };
    if (enumValues !== undefined && enumValues.length > 0) description.enum = enumValues;
    if (caster?.instance !== undefined) description.caster = caster.instance;
    if (nested !== undefined) description.schema = describeSchema(nested);
    paths[path] = description;
  });
  return {
    paths,
    indexes: schema.indexes(),
    options: { _id: schema.get('_id'), timestamps: schema.get('timestamps'), collection: schema.get('collection') },
  };
}
