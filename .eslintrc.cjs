/* ESLint 9 reads this legacy config with ESLINT_USE_FLAT_CONFIG=false (set in the npm script). */
module.exports = {
  root: true,
  parser: '@typescript-eslint/parser',
  parserOptions: {
    project: './tsconfig.json',
    tsconfigRootDir: __dirname,
    sourceType: 'module',
  },
  plugins: ['@typescript-eslint'],
  extends: [
    'eslint:recommended',
    'plugin:@typescript-eslint/strict-type-checked',
    'plugin:@typescript-eslint/stylistic-type-checked',
  ],
  env: { node: true, es2022: true },
  ignorePatterns: ['dist/', 'node_modules/', '.cache/', '*.cjs'],
  rules: {
    '@typescript-eslint/no-explicit-any': 'error',
    '@typescript-eslint/no-non-null-assertion': 'error',
    '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    // Typegoose classes are schema declarations: their props are assigned by Mongoose, not constructors.
    '@typescript-eslint/no-extraneous-class': 'off',
    // Those classes are data shapes with no methods or private state: a plain object is one.
    '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
  },
};
