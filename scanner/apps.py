from django.apps import AppConfig


class ScannerConfig(AppConfig):
    name = "scanner"
    default_auto_field = "django.db.models.BigAutoField"
