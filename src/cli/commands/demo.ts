import Table from 'cli-table3';
import { ToolModel } from '../../models/tool.js';
import { SYNC_COLLECTION_NAMES } from '../../sync/vocabulary.js';
import { SAMPLE_TOOLS } from '../sample-tools.js';

/** The main job on the embedded database: create tools and show the sync metadata they carry. */
export async function runDemo(print: (text: string) => void): Promise<void> {
  await ToolModel.deleteMany({ id: { $in: SAMPLE_TOOLS.map((tool) => tool.id) } });
  for (const input of SAMPLE_TOOLS) await new ToolModel(input).save();
  print(`created ${SAMPLE_TOOLS.length} tools with new ToolModel(...).save()\n`);

  const tools = await ToolModel.find({ id: { $in: SAMPLE_TOOLS.map((tool) => tool.id) } }).sort({ id: 1 });
  const table = new Table({ head: ['tool', 'overall', ...SYNC_COLLECTION_NAMES.map((name) => `${name} (status, hash)`)] });
  for (const tool of tools) {
    const { collections, overallStatus } = tool.syncMetadata;
    table.push([tool.id, overallStatus, ...SYNC_COLLECTION_NAMES.map((name) => `${collections[name].status} ${collections[name].contentHash}`)]);
  }
  print(table.toString());
  const first = tools[0];
  if (first !== undefined) {
    print(`\nsyncMetadata of ${first.id}:`);
    print(JSON.stringify(first.toObject().syncMetadata, null, 2));
  }
}
