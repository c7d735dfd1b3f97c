/* Internal to adapters/: the note an adapter keeps, at the first attempt
 * of a state's visit, of how things stood before that attempt changed
 * anything (sql.migrate: the database's version; switch.blue-green: the
 * colour live and the include). A retried attempt, or the re-run of a
 * resumed run, sees what the attempts before it did, not what was there
 * before the state: it reads the note instead, so its outputs, and the
 * default undo rendered from them, go back to before the first attempt.
 *
 * One note per state path and visit: RUN_DIR/notes/NAME.json (0600, its
 * folder 0700), holding {"entry": call->entry, "key": SHA-256 of KEY,
 * "data": ...}. KEY says what the note is about (the database and its
 * history table, the include), so a note about something else is never
 * taken for this call's; it is kept hashed because it may name a
 * database, and data holds nothing secret either. file.write keeps its
 * own backups the same way, per visit (RUN_DIR/backups/STATE.N). Both
 * functions block (file I/O, fsync): call them from libuv's thread pool. */
#ifndef CAIRN_ADAPTERS_NOTE_H
#define CAIRN_ADAPTERS_NOTE_H

#include <jansson.h>

#include "adapters/adapter.h"
#include "common/error.h"

/* The data of the note an earlier attempt of this visit of call's state
 * kept about key: *data is a new reference owned by the caller, or NULL
 * when there is none (no note, an earlier visit's, one about another key,
 * or no run_dir: a simulation or a test). Returns 0, or CAIRN_E_IO when a
 * note is there but cannot be read or is not a note (err says which
 * file): a note must never be silently replaced by a later attempt's
 * view. key is borrowed. */
int adapter__note_read(const struct adapter_call *call, const char *key,
                       json_t **data, struct cairn_error *err);

/* Keeps data (borrowed) as the note of this visit of call's state about
 * key, atomically and durably (fsync of the file and its folders) before
 * it returns, so it survives a kill -9 of cairn and a crash of the
 * machine that follow. Without run_dir does nothing. Returns 0,
 * CAIRN_E_IO or CAIRN_E_NOMEM. */
int adapter__note_write(const struct adapter_call *call, const char *key,
                        json_t *data, struct cairn_error *err);

#endif
