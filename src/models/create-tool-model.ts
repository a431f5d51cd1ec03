import { getModelForClass, type ReturnModelType } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { SyncArgumentError } from './errors.js';
import { nameArgument } from './sync-arguments.js';
import { defaultToolModel, Tool, ToolModel } from './tool.js';

export type ToolModelType = ReturnModelType<typeof Tool>;

export interface ToolModelOptions {
  /** The model's name on its connection (default `Tool`). */
  modelName?: string;
  /** The collection it reads and writes (default `tools`). */
  collection?: string;
  /**
   * Build the indexes when the model initializes (default false: on a production collection an
   * index build is the operator's decision; `checkIndexes(model, { apply: true })` builds them).
   */
  autoIndex?: boolean;
}

/** The models this function made, per connection: asked again, it returns the same one. */
const made = new WeakMap<mongoose.Connection, Map<string, ToolModelType>>();

/**
 * A `Tool` model with every static, hook and index of `ToolModel`, on any Mongoose connection
 * (`mongoose.createConnection()`, `connection.useDb()`) and collection. Models on different
 * connections or collections are independent; the same name and collection on the same
 * connection give the same model. A name the connection already uses for another model is an
 * error naming it.
 */
export function createToolModel(connection: mongoose.Connection, options: ToolModelOptions = {}): ToolModelType {
  const modelName = nameArgument(options.modelName ?? 'Tool', 'modelName');
  const collection = nameArgument(options.collection ?? 'tools', 'collection');
  if (options.autoIndex !== undefined && typeof options.autoIndex !== 'boolean') throw new SyncArgumentError('autoIndex', options.autoIndex, 'true or false');
  const own = made.get(connection) ?? new Map<string, ToolModelType>();
  made.set(connection, own);
  const previous = own.get(modelName);
  if (previous !== undefined) {
    if (previous.collection.collectionName === collection) return previous;
    throw new Error(`createToolModel: model "${modelName}" already exists on this connection for collection "${previous.collection.collectionName}", not "${collection}"; pass another modelName`);
  }
  // The default connection's ToolModel (created on first use: here, if nothing else has the name).
  const created = defaultToolModel.created();
  const isDefault = modelName === 'Tool' && collection === 'tools' && connection === mongoose.connection;
  if (created !== undefined ? connection.models[modelName] === created && created.collection.collectionName === collection : isDefault && connection.models[modelName] === undefined) {
    return ToolModel;
  }
  if (connection.modelNames().includes(modelName)) {
    throw new Error(`createToolModel: this connection already has a model named "${modelName}"; pass another modelName`);
  }
  const model = getModelForClass(Tool, {
    existingConnection: connection,
    schemaOptions: { collection, autoIndex: options.autoIndex ?? false },
    options: { customName: modelName, disableCaching: true },
  });
  own.set(modelName, model);
  return model;
}
