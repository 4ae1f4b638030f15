/**
 * Something the machine lacks or a service that would not start. Its message is one line meant for a person
 * (what is missing and how to get it); the entry points print it without a stack trace.
 */
export class InfraError extends Error {
  override name = "InfraError";
  constructor(
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
