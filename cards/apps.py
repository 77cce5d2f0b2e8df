from django.apps import AppConfig


class CardsConfig(AppConfig):
    """Dataset cards (the Hugging Face format, edited and checked) and reproducible splits."""

    name = "cards"
