"""Create a demo case (a poisoned image with layers, files, a graveyard and findings) for trying the UI."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cases.demo import build_demo_case


class Command(BaseCommand):
    help = "Create a demo case owned by USER (its lead), with N findings and M file records."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--findings", type=int, default=300)
        parser.add_argument("--files", type=int, default=3000)
        parser.add_argument("--hostile", action="store_true", help="add attacker-style names")

    def handle(self, *args, username: str, findings: int, files: int, hostile: bool, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        case = build_demo_case(user, findings=findings, files=files, hostile=hostile)
        self.stdout.write(f"{case.key}: /cases/{case.pk}/")
