"""Worker entry points: thin wrappers around vault services."""

from vaults import services


def deploy_vault(vault_id):
    services.deploy_vault(vault_id)


def remove_vault(vault_id):
    services.remove_vault(vault_id)


def delete_blobs(vault_id, blob_names):
    from vaults.models import Vault
    from vaults.storage import get_blob_store

    vault = Vault.objects.filter(pk=vault_id).first()
    if vault is None:
        return
    store = get_blob_store()
    for name in blob_names:
        store.delete_blob(vault.container_name, name)


def retention_and_gc():
    from vaults.gc import run_retention_and_gc

    return run_retention_and_gc()


def import_offline_seed(job_id):
    from vaults.offline import import_offline_seed as run

    run(job_id)
