// Command-line options for the interop tools: `--name value` or `--name=value`,
// each name from `known`, every value a string. Anything else is reported
// through `onError(message)`, which is expected not to return (exit or throw).

export function parseArgs(argv, known, onError) {
  const names = new Set(known);
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!arg.startsWith('--')) onError(`unexpected argument ${JSON.stringify(arg)}`);
    let name = arg.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq !== -1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      if (i + 1 >= argv.length) onError(`--${name} needs a value`);
      i += 1;
      value = argv[i];
    }
    if (!names.has(name)) onError(`unknown option --${name}`);
    out[name] = value;
  }
  return out;
}
