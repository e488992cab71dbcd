// Lint: TypeScript sanity everywhere, and the purity rule that keeps the protocol cores deterministic
// (DESIGN.md: nothing under the pure folders imports node:*, reads a clock, sets a timer or calls Math.random).
import tseslint from 'typescript-eslint';

const pureFolders = ['src/wire/**', 'src/core/**', 'src/teredo/**', 'src/isatap/**', 'src/sixtofour/**', 'src/portproxy/**'];
const nodeBuiltins = ['assert', 'buffer', 'child_process', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises', 'net', 'os',
  'path', 'perf_hooks', 'process', 'stream', 'timers', 'timers/promises', 'tls', 'url', 'util', 'worker_threads'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'scripts/**', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: pureFolders,
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['node:*'], message: 'Protocol cores are pure: no node:* imports (DESIGN.md).' }],
        paths: nodeBuiltins.map((name) => ({ name, message: 'Protocol cores are pure: no Node built-ins (DESIGN.md).' })),
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask',
          'process', 'performance', 'Buffer', 'require'].map((name) => ({ name, message: 'Protocol cores take time and I/O from the driver (DESIGN.md).' })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'Use the seeded Rng passed to the core.' },
        { object: 'Date', property: 'now', message: 'Cores never read a clock: take `now` as a parameter.' },
        { object: 'crypto', property: 'getRandomValues', message: 'Use the Rng passed to the core.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date']", message: 'Cores never read a clock: take `now` as a parameter.' },
        { selector: "CallExpression[callee.name='Date']", message: 'Cores never read a clock.' },
        { selector: "ImportExpression", message: 'Protocol cores are pure: no dynamic imports.' },
      ],
    },
  },
);
