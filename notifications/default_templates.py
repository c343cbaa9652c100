"""Built-in templates, used when neither the district nor the shared set has one.

Keys: (category code, channel, language) → (subject, body). Variables are documented in
docs/notifications.md.
"""

from __future__ import annotations

# E-mails end with the guardian's link to the parent portal (notifications.links), minted when
# the message is sent. Texts do not: the link would take a second segment (twice the cost and
# the rate), and the portal's sign-in by code works from any phone.
_LINK_EN = "\n\nChoose how and when we contact you: {{ portal_link }}\n"
_LINK_ES = "\n\nElija cómo y cuándo le avisamos: {{ portal_link }}\n"

DEFAULTS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("attendance", "sms", "en"): (
        "",
        "{{ school_name }}: {{ student_first_name }} was marked {{ status_text }} on "
        "{{ date }}{% if periods %} (period {{ periods }}){% endif %}. "
        "Questions? Call the school office. Reply STOP to opt out.",
    ),
    ("attendance", "email", "en"): (
        "Attendance notice for {{ student_first_name }}",
        "Dear {{ guardian_name }},\n\n{{ student_first_name }} was marked {{ status_text }} at "
        "{{ school_name }} on {{ date }}{% if periods %} (period {{ periods }}){% endif %}.\n\n"
        "If this is unexpected, please contact the school office." + _LINK_EN,
    ),
    ("attendance", "sms", "es"): (
        "",
        "{{ school_name }}: {{ student_first_name }} fue marcado/a {{ status_text }} el "
        "{{ date }}{% if periods %} (periodo {{ periods }}){% endif %}. "
        "Preguntas? Llame a la escuela. Responda STOP para no recibir mensajes.",
    ),
    ("attendance", "email", "es"): (
        "Aviso de asistencia de {{ student_first_name }}",
        "Estimado/a {{ guardian_name }}:\n\n{{ student_first_name }} fue marcado/a "
        "{{ status_text }} en {{ school_name }} el {{ date }}"
        "{% if periods %} (periodo {{ periods }}){% endif %}." + _LINK_ES,
    ),
    ("chronic_absence", "sms", "en"): (
        "",
        "{{ school_name }}: {{ student_first_name }} has {{ absences }} unexcused absences "
        "this year ({{ percent }}% of school days). Please contact the school. Reply STOP to "
        "opt out.",
    ),
    ("chronic_absence", "email", "en"): (
        "Attendance concern for {{ student_first_name }}",
        "Dear {{ guardian_name }},\n\n{{ student_first_name }} has {{ absences }} unexcused "
        "absences this school year ({{ percent }}% of enrolled days). Regular attendance "
        "matters; please contact {{ school_name }} so we can help." + _LINK_EN,
    ),
    ("general", "sms", "en"): ("", "{{ body }}"),
    ("general", "email", "en"): ("{{ subject }}", "{{ body }}" + _LINK_EN),
    ("emergency", "sms", "en"): ("", "{{ body }}"),
    ("emergency", "email", "en"): ("{{ subject }}", "{{ body }}" + _LINK_EN),
    ("operational", "email", "en"): ("[Attendance system] {{ subject }}", "{{ body }}"),
    ("digest", "sms", "en"): ("", "{{ body }}"),
    ("digest", "email", "en"): (
        "Today's messages from {{ district_name }}",
        "{{ body }}" + _LINK_EN,
    ),
}
