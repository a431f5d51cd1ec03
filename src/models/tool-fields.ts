import { prop } from '@typegoose/typegoose';
import { KEBAB_CASE, PRICING_MODELS, TOOL_LIMITS, type PricingModel } from './tool-vocabulary.js';
import { eachItem, isHttpUrl, lowercaseTokens, required, trimmedStrings } from './validators.js';

/**
 * The business fields of a tool: what a search product stores about it. `Tool` adds its sync
 * metadata, hooks and statics; a model of these alone is what a service without this package runs.
 */
export class ToolFields {
  /** Stable public slug, e.g. `visual-studio-code`. */
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

  /** One-paragraph summary; feeds the `tools` embedding. */
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

  /** Home page; http or https only. */
  @prop({
    type: String,
    trim: true,
    maxlength: TOOL_LIMITS.url,
    validate: { validator: isHttpUrl, message: 'Path `{PATH}` must be an http or https URL, got "{VALUE}".' },
  })
  public url?: string;

  @prop({ type: String, enum: PRICING_MODELS })
  public pricing?: PricingModel;

  /** What the tool does, most important first. */
  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public functionality!: string[];

  /** What people use it for, most important first. */
  @prop({
    type: () => [String],
    default: () => [],
    set: trimmedStrings,
    validate: eachItem((item) => item.length > 0 && item.length <= TOOL_LIMITS.listItem, `non-empty strings of at most ${TOOL_LIMITS.listItem} characters`),
  })
  public useCases!: string[];

  /** How it is used: web, cli, api, sdk, … (see KNOWN_INTERFACES); lowercase kebab-case. */
  @prop({
    type: () => [String],
    default: () => [],
    set: lowercaseTokens,
    validate: eachItem((item) => KEBAB_CASE.test(item) && item.length <= TOOL_LIMITS.interface, 'lowercase kebab-case words such as "web" or "ide-extension"'),
  })
  public interface!: string[];
}
