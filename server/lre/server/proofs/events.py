"""What each proof is called and what its event means in law, in French and English.

Articles: CPCE L100 (a consumer's consent), R53-2 (the proof of deposit and its items 1-5),
R53-3 I (the notification, the 15 days from the day after it, the sender kept
hidden until acceptance), R53-3 (the proofs of reception, refusal and
non-claim). The ETSI EN 319 522 event names the evidence carries are the keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from lre.server.domain.letters import EvidenceEvent


@dataclass(frozen=True)
class Bilingual:
    fr: str
    en: str


@dataclass(frozen=True)
class EventText:
    title: Bilingual
    meaning: Bilingual


TEXTS: dict[EvidenceEvent, EventText] = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE: EventText(
        Bilingual("Preuve de dépôt", "Proof of deposit"),
        Bilingual(
            "Le prestataire a pris en charge la lettre recommandée électronique de "
            "l'expéditeur pour le destinataire nommés ci-dessus. Cette preuve de dépôt porte "
            "les mentions de l'article R53-2 du code des postes et des communications "
            "électroniques (CPCE) : l'expéditeur et le destinataire (nom ou raison sociale, "
            "adresse électronique), l'identifiant unique de la lettre, la date et l'heure du "
            "dépôt établies par horodatage électronique, et le cachet du prestataire.",
            "The provider took charge of the sender's registered electronic letter to the "
            "recipient named above. This proof of deposit carries the items of article R53-2 "
            "of the French Post and Electronic Communications Code (CPCE): sender and "
            "recipient (name or company name, e-mail address), the letter's unique "
            "identifier, the date and time of deposit given by an electronic timestamp, and "
            "the provider's seal.",
        ),
    ),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE: EventText(
        Bilingual("Preuve de notification", "Proof of notification"),
        Bilingual(
            "Le destinataire a été informé par voie électronique qu'une lettre recommandée "
            "électronique lui est adressée et qu'il peut l'accepter ou la refuser dans un délai "
            "de quinze jours à compter du lendemain de cette notification (article R53-3 I du "
            "CPCE). L'identité de l'expéditeur ne lui est pas indiquée avant son acceptation.",
            "The recipient was informed electronically that a registered electronic letter "
            "is addressed to them and that they may accept or refuse it within fifteen days "
            "counted from the day after this notification (CPCE article R53-3 I). The sender's "
            "identity is not disclosed to them before acceptance.",
        ),
    ),
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE: EventText(
        Bilingual("Preuve de réception (acceptation)", "Proof of receipt (acceptance)"),
        Bilingual(
            "Le destinataire, après avoir été identifié, a accepté la lettre dans le délai de "
            "quinze jours. Cette preuve de réception porte les mentions de la preuve de dépôt "
            "et la date et l'heure de réception établies par horodatage électronique (articles "
            "R53-2 et R53-3 du CPCE). L'acceptation est définitive : la lettre ne peut plus être "
            "refusée.",
            "The recipient, once identified, accepted the letter within the fifteen days. "
            "This proof of receipt carries the items of the proof of deposit and the date "
            "and time of receipt given by an electronic timestamp (CPCE articles R53-2 and "
            "R53-3). Acceptance is final: the letter can no longer be refused.",
        ),
    ),
    EvidenceEvent.CONTENT_HANDOVER: EventText(
        Bilingual("Preuve de remise du contenu", "Proof of handover of the content"),
        Bilingual(
            "Après son acceptation, le contenu de la lettre, dont les empreintes figurent "
            "ci-dessus, a été remis au destinataire (article R53-3 du CPCE).",
            "After acceptance, the letter's content, whose digests are listed above, was "
            "handed over to the recipient (CPCE article R53-3).",
        ),
    ),
    EvidenceEvent.CONSIGNMENT_REJECTION: EventText(
        Bilingual("Preuve de refus", "Proof of refusal"),
        Bilingual(
            "Le destinataire, après avoir été identifié, a refusé la lettre dans le délai de "
            "quinze jours. Cette preuve porte les mentions de la preuve de dépôt et la date et "
            "l'heure du refus établies par horodatage électronique (articles R53-2 et R53-3 du "
            "CPCE). Le refus est définitif : le contenu n'est pas remis.",
            "The recipient, once identified, refused the letter within the fifteen days. This "
            "proof carries the items of the proof of deposit and the date and time of refusal "
            "given by an electronic timestamp (CPCE articles R53-2 and R53-3). Refusal is "
            "final: the content is not handed over.",
        ),
    ),
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: EventText(
        Bilingual("Preuve de non-réclamation", "Proof of non-claim"),
        Bilingual(
            "Le destinataire n'a ni accepté ni refusé la lettre dans le délai de quinze jours "
            "courant à compter du lendemain de sa notification (article R53-3 du CPCE). "
            "Cette preuve porte les mentions de la preuve de dépôt et la date et l'heure "
            "de la constatation. La lettre n'est plus accessible au destinataire.",
            "The recipient neither accepted nor refused the letter within the fifteen days "
            "counted from the day after its notification (CPCE article R53-3). "
            "This proof carries the items of the proof of deposit and the date and time it "
            "was established. The letter is no longer available to the recipient.",
        ),
    ),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: EventText(
        Bilingual("Preuve d'échec de la notification", "Proof of notification failure"),
        Bilingual(
            "Le message informant le destinataire qu'une lettre lui est adressée n'a pas pu "
            "lui être remis, pour la raison indiquée. Faute de notification, le délai de quinze "
            "jours de l'article R53-3 I du CPCE n'a pas couru et la lettre n'a pas été présentée "
            "au destinataire.",
            "The message telling the recipient that a letter is addressed to them could not "
            "be delivered, for the reason given. Without a notification, the fifteen days of "
            "CPCE article R53-3 I did not start and the letter was not presented to the "
            "recipient.",
        ),
    ),
    EvidenceEvent.SUBMISSION_REJECTION: EventText(
        Bilingual("Preuve de rejet du dépôt", "Proof of rejected submission"),
        Bilingual(
            "Le prestataire a refusé de prendre en charge la lettre, pour la raison indiquée "
            "(par exemple l'absence de consentement d'un destinataire non professionnel à "
            "recevoir des lettres recommandées électroniques, exigé par l'article L100 du "
            "CPCE). La lettre n'a pas été déposée "
            "et le destinataire n'a pas été informé.",
            "The provider refused to take charge of the letter, for the reason given (for "
            "instance a non-professional recipient who has not consented to receive "
            "registered electronic letters, as CPCE article L100 requires). The letter was "
            "not deposited and the recipient was not informed.",
        ),
    ),
}


# The reason codes evidences carry (``reasonCode``), in words. A code not
# listed here is printed as it is, beside the evidence's own text.
REASONS: dict[str, Bilingual] = {
    "consent_missing": Bilingual(
        "destinataire non professionnel n'ayant pas consenti à recevoir des lettres "
        "recommandées électroniques (article L100 du CPCE)",
        "a non-professional recipient who has not consented to receive registered "
        "electronic letters (CPCE article L100)",
    ),
    "party_unknown": Bilingual("destinataire inconnu", "no such recipient"),
    "invalid_address": Bilingual(
        "nom de destinataire ou adresse électronique inutilisable",
        "not a recipient's name, or no usable e-mail address",
    ),
    "sender_not_identified": Bilingual(
        "expéditeur non identifié au niveau requis", "sender not identified at the level required"
    ),
    "content_empty": Bilingual("contenu vide", "empty content"),
    "content_too_large": Bilingual("contenu trop volumineux", "content too large"),
    "notification_bounced": Bilingual(
        "le serveur de messagerie du destinataire a définitivement refusé le message de "
        "notification",
        "the recipient's mail server permanently refused the notification message",
    ),
    "notification_undeliverable": Bilingual(
        "le message de notification n'a pas pu être remis au serveur de messagerie du destinataire",
        "the notification message could not be handed to the recipient's mail server",
    ),
    "refused_by_recipient": Bilingual(
        "refus exprimé par le destinataire", "refused by the recipient"
    ),
}
