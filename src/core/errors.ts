/** Local misuse (bad configuration, bad argument): thrown, with a message a user can act on. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A user-supplied value that does not parse (command line, config file). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
