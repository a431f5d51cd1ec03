/** The content of one tool, as plain data: the fixture of the pure tests of hashes, plans and the parser. */
export const EDITOR_CONTENT = {
  name: 'Visual Studio Code',
  description: 'A code editor.',
  longDescription: 'Long text.',
  category: 'editor',
  tags: ['editor', 'ide'],
  pricing: 'free',
  functionality: ['edit code', 'debug'],
  useCases: ['write software'],
  interface: ['desktop', 'cli'],
};
