/**
 * What a user would run without this package: a Typegoose `Tool` of the same business fields (the
 * package's own `ToolFields`: types, setters and validators), the same schema options, and its
 * business index (the unique `id`); no `syncMetadata`, no hooks, no statics. The write-path benchmark compares the package
 * with it side by side, and checks first that the two declare the same business fields.
 */
import { getModelForClass, index, modelOptions, Severity, type ReturnModelType } from '@typegoose/typegoose';
import type mongoose from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { ToolFields } from '../src/models/tool-fields.js';
import { BUSINESS_FIELDS } from '../src/models/tool-vocabulary.js';

@index({ id: 1 }, { name: 'tool_id_unique', unique: true })
@modelOptions({
  schemaOptions: { collection: 'tools_plain', timestamps: true },
  options: { customName: 'PlainTool', allowMixed: Severity.ERROR },
})
export class PlainTool extends ToolFields {
  public createdAt?: Date;
  public updatedAt?: Date;
}

export const PlainToolModel: ReturnModelType<typeof PlainTool> = getModelForClass(PlainTool);

/** Mongoose's own top-level paths: not business fields. */
const MONGOOSE_PATHS = new Set(['_id', '__v', 'createdAt', 'updatedAt']);

/** A path as far as the comparison goes: its type, options (setters and validators by their source) and validators. */
function describePath(schema: mongoose.Schema, path: string): string {
  const type: mongoose.SchemaType = schema.path(path);
  const options = Object.entries(type.options as Record<string, unknown>)
    .map(([key, value]) => `${key}=${typeof value === 'function' ? String(value) : JSON.stringify(value, (_k, inner: unknown) => (typeof inner === 'function' ? String(inner) : inner))}`)
    .sort();
  return JSON.stringify({ instance: type.instance, options, validators: type.validators.length });
}

/**
 * The comparison is only fair if the plain model is the package's model without its sync
 * layer: the same business fields, declared the same way, and nothing else.
 */
export function checkPlainModelMatches(): void {
  const toolSchema = ToolModel.schema as mongoose.Schema;
  const plainSchema = PlainToolModel.schema as mongoose.Schema;
  const topLevel = (schema: mongoose.Schema): string[] =>
    [...new Set(Object.keys(schema.paths).map((path) => path.split('.')[0] ?? path))].filter((path) => !MONGOOSE_PATHS.has(path)).sort();
  const business = [...BUSINESS_FIELDS].sort();
  const toolFields = topLevel(toolSchema).filter((path) => path !== 'syncMetadata');
  if (JSON.stringify(toolFields) !== JSON.stringify(business)) throw new Error(`ToolModel's business fields are ${toolFields.join(', ')}; the bench expects ${business.join(', ')}`);
  if (JSON.stringify(topLevel(plainSchema)) !== JSON.stringify(business)) throw new Error(`the plain model's fields are ${topLevel(plainSchema).join(', ')}; expected ${business.join(', ')}`);
  for (const field of business) {
    if (describePath(toolSchema, field) !== describePath(plainSchema, field)) throw new Error(`the plain model declares "${field}" unlike ToolModel`);
  }
  if (JSON.stringify(toolSchema.get('timestamps')) !== JSON.stringify(plainSchema.get('timestamps'))) throw new Error('the plain model keeps timestamps unlike ToolModel');
}
