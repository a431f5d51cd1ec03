import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';

// No static import of the package: the service's own model is defined first, as in a service
// that imports the package after its own models (each test file has its own module registry).
describe('importing the package', () => {
  it('creates no model: a service with its own Tool model on the default connection can import it and use createToolModel', async () => {
    const own = mongoose.model('Tool', new mongoose.Schema({ title: String }));
    const pkg = await import('../../src/index.js');
    expect(mongoose.modelNames()).toEqual(['Tool']);
    expect(mongoose.model('Tool')).toBe(own);
    // The name is the service's: asking for it is a clear error, another name works.
    expect(() => pkg.createToolModel(mongoose.connection)).toThrow(/already has a model named "Tool"/);
    // ToolModel, the default connection's `Tool`, says why it cannot be, and what to use instead.
    expect(() => pkg.ToolModel.modelName).toThrow(
      'ToolModel is tool-sync\'s model named "Tool" on the default Mongoose connection, and that connection already has a model named "Tool" '
        + "that is not tool-sync's (mongoose.model('Tool', …) was called first): use createToolModel(mongoose.connection, { modelName: 'SyncTool' }) "
        + 'there instead, or createToolModel(connection) on a connection of its own',
    );
    expect(() => new pkg.ToolModel({ id: 'x' })).toThrow(/createToolModel\(mongoose\.connection, \{ modelName: 'SyncTool' \}\)/);
    expect(mongoose.model('Tool')).toBe(own);
    const tools = pkg.createToolModel(mongoose.connection, { modelName: 'SyncTool', collection: 'sync_tools' });
    expect(tools.modelName).toBe('SyncTool');
    expect(mongoose.modelNames().sort()).toEqual(['SyncTool', 'Tool']);
    expect(new tools({ id: 'x', name: 'X', description: 'Y', category: 'z' }).syncMetadata.overallStatus).toBe('pending');
  });

  it('ToolModel is the default connection\'s Tool model once used: new, statics, instanceof, the same model as mongoose.model()', async () => {
    await mongoose.disconnect();
    mongoose.deleteModel(/.*/);
    const { ToolModel } = await import('../../src/index.js');
    const doc = new ToolModel({ id: 'lazy', name: 'Lazy', description: 'Made on first use.', category: 'tests' });
    expect(doc).toBeInstanceOf(ToolModel);
    expect(doc.constructor).toBe(mongoose.model('Tool'));
    expect(ToolModel.modelName).toBe('Tool');
    expect(ToolModel.collection.collectionName).toBe('tools');
    expect(typeof ToolModel.findNeedingSync).toBe('function');
    expect(Object.getPrototypeOf(ToolModel)).toBe(Object.getPrototypeOf(mongoose.model('Tool')));
  });
});
