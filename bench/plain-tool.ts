/**
 * What a user would run without this package: a Typegoose `Tool` with the same business fields,
 * types, setters and validators, the same schema options, and its business index (the unique
 * `id`); no `syncMetadata`, no hooks, no statics. The write-path benchmark compares the package
 * with it side by side, and checks first that the two declare the same business fields.
 */
import { getModelForClass, index, modelOptions, prop, Severity, type ReturnModelType } from '@typegoose/typegoose';
import type mongoose from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { BUSINESS_FIELDS, KEBAB_CASE, PRICING_MODELS, TOOL_LIMITS, type PricingModel } from '../src/models/tool-vocabulary.js';
import { eachItem, isHttpUrl, lowercaseTokens, required, trimmedStrings } from '../src/models/validators.js';

@index({ id: 1 }, { name: 'tool_id_unique', unique: true })
@modelOptions({
  schemaOptions: { collection: 'tools_plain', timestamps: true },
  options: { customName: 'PlainTool', allowMixed: Severity.ERROR },
})
export class PlainTool {
  @prop({
    type: String,
    required,
    trim: true,
    maxlength: TOOL_LIMITS.id,
    match: [KEBAB_CASE, 'Path `{PATH}` must be lowercase kebab-case (a-z, 0-9, single hyphens), got "{VALUE}".'],
  })
  public id!: string;

  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.name })
  public name!: string;

  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.description })
  public description!: string;

  @prop({ type: String, trim: true, maxlength: TOOL_LIMITS.longDescription })
  public longDescription?: string;

  @prop({ type: String, required, trim: true, maxlength: TOOL_LIMITS.category })
  public category!: string;

  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((tag) => tag.length > 0 && tag.length <= TOOL_LIMITS.tag, `non-empty strings of at most ${TOOL_LIMITS.tag} characters`),
  })
  public tags!: string[];

  @prop({
    type: String,
    trim: true,
    maxlength: TOOL_LIMITS.url,
    validate: { validator: isHttpUrl, message: 'Path `{PATH}` must be an http or https URL, got "{VALUE}".' },
  })
  public url?: string;

  @prop({ type: String, enum: PRICING_MODELS })
  public pricing?: PricingModel;

  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public functionality!: string[];

  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public useCases!: string[];

  @prop({
    type: () => [String],
    default: () => [],
    set: lowercaseTokens,
    validate: eachItem((item) => KEBAB_CASE.test(item) && item.length <= TOOL_LIMITS.interface, 'lowercase kebab-case words such as "web" or "ide-extension"'),
  })
  public interface!: string[];

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
