from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Parent portal"

    def ready(self) -> None:
        from notifications.links import LinkMaker, link_maker_set
        from portal.services import portal_link_length, portal_links_for

        # The link that guardians' messages carry opens this portal (notifications.links).
        link_maker_set(LinkMaker(make=portal_links_for, length=portal_link_length))
