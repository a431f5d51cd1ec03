import mongoose from 'mongoose';

/**
 * A model created on its first use, not when the package is imported: importing creates no model
 * on the default connection, so a service that has a `Tool` model of its own there can still
 * import the package (and use `createToolModel` on any connection). Every use reaches the real
 * model: `new`, statics, properties, `instanceof`.
 */
export interface LazyModel<M> {
  model: M;
  /** The real model, if something has used it yet. */
  created: () => M | undefined;
}

export function lazyModel<M extends object>(create: () => M): LazyModel<M> {
  let real: M | undefined;
  const get = (): M => (real ??= create());
  // A constructible, callable target, so that `new` and calls reach their traps; its own
  // properties are never read.
  const target = function lazyModel(): void { /* never called */ } as unknown as M;
  type Constructor = new (...args: unknown[]) => object;
  const model: M = new Proxy(target, {
    construct: (_target, args, newTarget) => {
      const constructor = get() as unknown as Constructor;
      const made: object = Reflect.construct(constructor, args, newTarget === model ? constructor : newTarget) as object;
      return made;
    },
    apply: (_target, thisArg, args): unknown => Reflect.apply(get() as unknown as (...a: unknown[]) => unknown, thisArg, args),
    get: (_target, key): unknown => Reflect.get(get(), key),
    set: (_target, key, value) => Reflect.set(get(), key, value),
    has: (_target, key) => Reflect.has(get(), key),
    deleteProperty: (_target, key) => Reflect.deleteProperty(get(), key),
    defineProperty: (_target, key, descriptor) => Reflect.defineProperty(get(), key, descriptor),
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
  });
  return { model, created: () => real };
}

/**
 * ToolModel is the default connection's model named `Tool`. Where the service already has a `Tool`
 * model of its own there, Mongoose's bare "Cannot overwrite `Tool` model once compiled" would say
 * nothing of why or what to do: this says both.
 */
export function explainTakenName<M>(create: () => M): M {
  try {
    return create();
  } catch (error) {
    if (!(error instanceof mongoose.Error.OverwriteModelError)) throw error;
    throw new Error(
      'ToolModel is tool-sync\'s model named "Tool" on the default Mongoose connection, and that connection already has a model named "Tool" '
        + "that is not tool-sync's (mongoose.model('Tool', …) was called first): use createToolModel(mongoose.connection, { modelName: 'SyncTool' }) "
        + "there instead, or createToolModel(connection) on a connection of its own",
      { cause: error },
    );
  }
}
