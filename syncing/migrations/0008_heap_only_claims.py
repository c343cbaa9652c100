"""The change table's claims become heap-only updates: no index covers ``state`` any more,
and each page keeps half its space free for the new versions of its rows."""

from django.db import migrations, models

# Half of each page free: a batch claims consecutive changes, so every row of a page is
# updated within one transaction, before pruning can reclaim any old version.
FILLFACTOR = 50


def _fillfactor(value: int | None):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return  # a storage parameter of PostgreSQL's only
        setting = f"SET (fillfactor = {int(value)})" if value else "RESET (fillfactor)"
        schema_editor.execute(f"ALTER TABLE syncing_syncchange {setting}")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("syncing", "0007_drop_bookkeeping_fk_constraints"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="syncchange", name="syncchange_run_state"),
        migrations.AddIndex(
            model_name="syncchange",
            index=models.Index(fields=["run", "rank", "id"], name="syncchange_run_rank"),
        ),
        migrations.RunPython(_fillfactor(FILLFACTOR), _fillfactor(None)),
    ]
