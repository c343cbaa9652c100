from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection as db
from django.test import override_settings

from core import encryption
from sis import services
from sis.models import SISConnection, SISCredential
from tests.factories import DistrictFactory

KEY_1 = Fernet.generate_key().decode()
KEY_2 = Fernet.generate_key().decode()
SECRET = "s3cret-value-for-tests"


def test_it_round_trips_and_never_stores_plaintext():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_1]):
        token = encryption.encrypt(SECRET)
        assert token.startswith("enc1:") and SECRET not in token
        assert encryption.decrypt(token) == SECRET


def test_a_wrong_key_raises_instead_of_returning_ciphertext():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_1]):
        token = encryption.encrypt(SECRET)
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[KEY_2]),
        pytest.raises(encryption.DecryptionError) as info,
    ):
        encryption.decrypt(token)
    assert token not in str(info.value) and KEY_1 not in str(info.value)
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt("not-encrypted")


def test_production_requires_its_own_keys():
    with (
        override_settings(SETTINGS_MODULE="config.settings.production", FIELD_ENCRYPTION_KEYS=[]),
        pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"),
    ):
        encryption.encrypt(SECRET)
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=["not-a-key"]),
        pytest.raises(ImproperlyConfigured),
    ):
        encryption.encrypt(SECRET)


def _connection(name="SIS"):
    return services.sis_connection_create(
        district=DistrictFactory(),
        name=name,
        provider="powerschool",
        base_url="https://ps.example.org",
        client_id="client-id-123",
        client_secret=SECRET,
    )


@pytest.mark.django_db
def test_the_raw_column_holds_no_plaintext():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_1]):
        connection = _connection()
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT client_id_encrypted, client_secret_encrypted FROM sis_siscredential"
                " WHERE connection_id = %s",
                [connection.pk],
            )
            raw_id, raw_secret = cursor.fetchone()
        assert SECRET not in raw_secret and "client-id-123" not in raw_id
        assert connection.credential.client_secret == SECRET


@pytest.mark.django_db
def test_add_key_rotate_drop_old_key_still_decrypts():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_1]):
        connection = _connection()
        before = SISCredential.objects.get(connection=connection).client_secret_encrypted
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_2, KEY_1]):
        call_command("rotate_encryption_keys", "--json", "--batch-size", "1")
        after = SISCredential.objects.get(connection=connection).client_secret_encrypted
        assert after != before
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_2]):
        credential = SISCredential.objects.get(connection=connection)
        assert credential.client_secret == SECRET
        assert credential.client_id == "client-id-123"
        with pytest.raises(encryption.DecryptionError):
            encryption.decrypt(before)


@pytest.mark.django_db
def test_rotation_with_a_missing_key_fails_loudly():
    from django.core.management.base import CommandError

    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_1]):
        _connection()
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[KEY_2]),
        pytest.raises(CommandError, match="cannot be decrypted"),
    ):
        call_command("rotate_encryption_keys", "--json")


@pytest.mark.django_db
def test_history_holds_no_secrets():
    connection = _connection()
    services.sis_connection_update(connection=connection, client_secret="another-" + SECRET)
    history = list(SISConnection.history.filter(id=connection.pk).values())
    assert len(history) == 2
    dumped = json.dumps(history, default=str)
    assert SECRET not in dumped and "enc1:" not in dumped
    assert not any("secret" in f.name for f in SISConnection.history.model._meta.fields)
    assert repr(connection.credential) == f"<SISCredential connection={connection.pk}>"
