import mongoose from 'mongoose';
import { NoDatabaseEngineError } from '../db/resolve.js';

/** One line that names the problem, for any error a command can end with. */
export function describeFailure(error: unknown): string {
  return describe(error).split('\n').map((line) => line.trim()).filter((line) => line !== '').join(' ');
}

function describe(error: unknown): string {
  // The CLI only starts an embedded database when neither --uri nor MONGODB_URI is set.
  if (error instanceof NoDatabaseEngineError) {
    return 'no database to work on: pass --uri <connection string> or set MONGODB_URI '
      + `(neither is set, and no embedded database can be started here: ${error.reasons.join('; ')})`;
  }
  if (error instanceof mongoose.Error.ValidationError) return `invalid data: ${error.message}`;
  if (
    error instanceof mongoose.Error.MongooseServerSelectionError ||
    error instanceof mongoose.mongo.MongoServerSelectionError ||
    error instanceof mongoose.mongo.MongoNetworkError
  ) {
    return `cannot reach the database server: ${error.message}`;
  }
  if (error instanceof mongoose.mongo.MongoServerError && (error.code === 18 || error.codeName === 'AuthenticationFailed')) {
    return `authentication failed: ${error.message}`;
  }
  // The connection-string parser has a MongoParseError class of its own: matched by name.
  if (error instanceof Error && error.name === 'MongoParseError') return `invalid connection string: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
