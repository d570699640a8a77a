"""A seeded corpus of name files in legacy code pages, to measure how often the reader's code
page decision (bot/imports/code_pages.py) misreads them: a few rows of realistic first names,
last names and cities per language, written in the code page Excel on that language's
Windows (or an old Mac) saves "CSV" in. Nothing is stored: the same seed makes the same files.

    python -m tests.imports.code_page_corpus [files per language] [seed]

prints, per language, how many files are read as written, misread (stored garbled) or
refused (the person is asked for CSV UTF-8).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from bot.imports.reading import CsvFileError, detect_encoding


@dataclass(frozen=True, slots=True)
class Language:
    encoding: str
    first: tuple[str, ...]
    last: tuple[str, ...]
    cities: tuple[str, ...]


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


TURKISH = Language("cp1254", _names(
    "Ayşe, Fatma, Emine, Hatice, Zeynep, Elif, Meryem, Şerife, Zehra, Sultan, Hülya, Özlem,"
    "Gülşen, Büşra, Merve, Esra, Derya, Yasemin, Mehmet, Mustafa, Ahmet, Ali, Hüseyin, Hasan,"
    "İbrahim, İsmail, Osman, Yusuf, Murat, Ömer, Ramazan, Halil, Süleyman, Abdullah, Kemal,"
    "Emre, Burak, Çağrı, Barış, Gökhan, Serkan, Oğuz, Tuğba, Duygu, Ilgın, Irmak, Işıl"), _names(
    "Yılmaz, Kaya, Demir, Şahin, Çelik, Yıldız, Yıldırım, Öztürk, Aydın, Özdemir, Arslan,"
    "Doğan, Kılıç, Aslan, Çetin, Kara, Koç, Kurt, Özkan, Şimşek, Polat, Özcan, Korkmaz, Çakır,"
    "Erdoğan, Yavuz, Can, Acar, Şen, Aktaş, Güler, Yalçın, Güneş, Bozkurt, Bulut, Keskin,"
    "Ünal, Turan, Gül, Özer, Işık, Kaplan, Avcı, Sarı, Tekin, Taş, Köse, Yüksel, Ateş, Aksoy"),
    _names(
    "İstanbul, Ankara, İzmir, Bursa, Antalya, Konya, Adana, Şanlıurfa, Gaziantep, Kocaeli,"
    "Mersin, Diyarbakır, Hatay, Manisa, Kayseri, Samsun, Balıkesir, Kahramanmaraş, Van, Aydın,"
    "Denizli, Sakarya, Tekirdağ, Muğla, Eskişehir, Mardin, Malatya, Trabzon, Erzurum, Ordu,"
    "Sivas, Tokat, Çorum, Elazığ, Kütahya, Çanakkale, Muş, Düzce, Uşak"))
CZECH = Language("cp1250", _names(
    "Jan, Petr, Josef, Pavel, Jaroslav, Martin, Tomáš, Jiří, Miroslav, František, Zdeněk,"
    "Václav, Michal, Karel, Milan, Vladimír, Lukáš, David, Jakub, Ondřej, Marie, Jana, Eva,"
    "Hana, Anna, Lenka, Kateřina, Věra, Lucie, Alena, Petra, Jaroslava, Ludmila, Helena,"
    "Zdeňka, Markéta, Tereza, Božena, Jitka, Dagmar"), _names(
    "Novák, Svoboda, Novotný, Dvořák, Černý, Procházka, Kučera, Veselý, Horák, Němec, Marek,"
    "Pospíšil, Pokorný, Hájek, Král, Jelínek, Růžička, Beneš, Fiala, Sedláček, Doležal, Zeman,"
    "Kolář, Navrátil, Čermák, Vaněk, Urban, Blažek, Kříž, Kovář, Bartoš, Vlček, Polák, Musil,"
    "Kopecký, Šimek, Konečný, Malý, Holub, Štěpánek, Nováková, Svobodová, Dvořáková, Černá,"
    "Procházková, Kučerová, Veselá, Němcová"), _names(
    "Praha, Brno, Ostrava, Plzeň, Liberec, Olomouc, České Budějovice, Hradec Králové,"
    "Ústí nad Labem, Pardubice, Zlín, Havířov, Kladno, Most, Opava, Frýdek-Místek, Karviná,"
    "Jihlava, Teplice, Děčín, Karlovy Vary, Chomutov, Mladá Boleslav, Prostějov, Přerov,"
    "Česká Lípa, Třebíč, Třinec, Tábor, Znojmo, Příbram, Cheb, Kolín, Písek, Trutnov,"
    "Kroměříž, Vsetín, Šumperk, Uherské Hradiště"))
POLISH = Language("cp1250", _names(
    "Anna, Maria, Katarzyna, Małgorzata, Agnieszka, Barbara, Ewa, Krystyna, Elżbieta, Zofia,"
    "Joanna, Magdalena, Monika, Grażyna, Danuta, Jadwiga, Aleksandra, Beata, Marta, Bożena,"
    "Piotr, Krzysztof, Andrzej, Tomasz, Paweł, Jan, Michał, Marcin, Stanisław, Jakub, Adam,"
    "Marek, Łukasz, Grzegorz, Mateusz, Wojciech, Mariusz, Dariusz, Zbigniew, Jerzy"), _names(
    "Nowak, Kowalski, Wiśniewski, Wójcik, Kowalczyk, Kamiński, Lewandowski, Zieliński,"
    "Szymański, Woźniak, Dąbrowski, Kozłowski, Jankowski, Mazur, Wojciechowski, Kwiatkowski,"
    "Krawczyk, Kaczmarek, Piotrowski, Grabowski, Zając, Pawłowski, Michalski, Król, Wieczorek,"
    "Jabłoński, Wróbel, Nowakowski, Majewski, Olszewski, Stępień, Malinowski, Jaworski,"
    "Adamczyk, Dudek, Nowicki, Pawlak, Górski, Witkowski, Walczak"), _names(
    "Warszawa, Kraków, Łódź, Wrocław, Poznań, Gdańsk, Szczecin, Bydgoszcz, Lublin, Białystok,"
    "Katowice, Gdynia, Częstochowa, Radom, Toruń, Sosnowiec, Rzeszów, Kielce, Gliwice,"
    "Olsztyn, Zabrze, Bielsko-Biała, Bytom, Zielona Góra, Rybnik, Ruda Śląska, Opole, Tychy,"
    "Elbląg, Płock, Wałbrzych, Włocławek, Tarnów, Chorzów, Koszalin, Kalisz, Legnica, Słupsk"))
LITHUANIAN = Language("cp1257", _names(
    "Jonas, Petras, Antanas, Juozas, Kazimieras, Vytautas, Mindaugas, Tomas, Darius, Andrius,"
    "Mantas, Lukas, Matas, Žygimantas, Rūta, Ona, Janina, Irena, Kristina, Laura, Rasa, Eglė,"
    "Gintarė, Aušra, Jūratė, Dalia, Vilija, Živilė, Agnė, Indrė, Austėja, Gabija, Ieva,"
    "Saulius, Arūnas, Algirdas, Gediminas, Kęstutis, Vaidas, Rimantas"), _names(
    "Kazlauskas, Jankauskas, Petrauskas, Stankevičius, Vasiliauskas, Žukauskas, Butkus,"
    "Paulauskas, Urbonas, Kavaliauskas, Baranauskas, Pocius, Navickas, Sakalauskas, Rimkus,"
    "Žilinskas, Mockus, Šimkus, Vaitkus, Kairys, Ramanauskas, Adomaitis, Šukys, Lukošius,"
    "Balčiūnas, Jasiūnas, Mažeika, Vaičiulis, Kučinskas, Grigas, Kazlauskienė, Jankauskienė,"
    "Petrauskienė, Stankevičienė, Žukauskaitė, Butkutė, Šimkutė"), _names(
    "Vilnius, Kaunas, Klaipėda, Šiauliai, Panevėžys, Alytus, Marijampolė, Mažeikiai, Jonava,"
    "Utena, Kėdainiai, Telšiai, Tauragė, Ukmergė, Visaginas, Plungė, Kretinga, Šilutė,"
    "Radviliškis, Palanga, Druskininkai, Rokiškis, Biržai, Elektrėnai, Gargždai, Jurbarkas,"
    "Vilkaviškis, Raseiniai, Anykščiai, Lentvaris"))
LATVIAN = Language("cp1257", _names(
    "Jānis, Andris, Mārtiņš, Kārlis, Pēteris, Edgars, Aivars, Māris, Juris, Roberts, Artūrs,"
    "Dainis, Gints, Ēriks, Oskars, Valdis, Kristaps, Raimonds, Aleksandrs, Uldis, Anna,"
    "Kristīne, Inese, Līga, Ilze, Laura, Ieva, Dace, Marta, Sanita, Zane, Agnese, Elīna, Evija,"
    "Santa, Madara, Ināra, Māra, Baiba, Anete"), _names(
    "Bērziņš, Kalniņš, Ozoliņš, Jansons, Ozols, Liepiņš, Krūmiņš, Balodis, Eglītis, Zariņš,"
    "Pētersons, Vītols, Kļaviņš, Kārkliņš, Vanags, Zvirbulis, Lācis, Siliņš, Grīnbergs, Dzenis,"
    "Zālītis, Šmits, Freimanis, Kalējs, Strazdiņš, Mežs, Bērziņa, Kalniņa, Ozoliņa, Liepiņa,"
    "Krūmiņa, Zariņa"), _names(
    "Rīga, Daugavpils, Liepāja, Jelgava, Jūrmala, Ventspils, Rēzekne, Valmiera, Jēkabpils,"
    "Ogre, Tukums, Cēsis, Salaspils, Kuldīga, Olaine, Saldus, Talsi, Dobele, Sigulda, Līvāni,"
    "Gulbene, Madona, Bauska, Ludza, Limbaži, Alūksne, Preiļi, Balvi, Krāslava, Smiltene"))
ESTONIAN = Language("cp1257", _names(
    "Mart, Jaan, Toomas, Andres, Rein, Peeter, Jüri, Tõnu, Märt, Urmas, Aivar, Indrek, Margus,"
    "Priit, Tiit, Mari, Kadri, Triin, Liis, Kätlin, Kristiina, Tiina, Anneli, Pille, Ülle,"
    "Merike, Sirje, Maarja, Karmen, Helen"), _names(
    "Tamm, Saar, Sepp, Mägi, Kask, Kukk, Rebane, Ilves, Pärn, Koppel, Lepik, Kuusk, Karu, Lill,"
    "Põder, Raudsepp, Vaher, Kütt, Järv, Luik, Oja, Teder, Mölder, Kõiv, Laur, Must, Kangur,"
    "Ots, Sarapuu, Külv, Šmidt, Žukov"), _names(
    "Tallinn, Tartu, Narva, Pärnu, Kohtla-Järve, Viljandi, Maardu, Rakvere, Kuressaare,"
    "Sillamäe, Võru, Valga, Jõhvi, Haapsalu, Keila, Paide, Türi, Põlva, Elva, Saue"))
FRENCH = Language("cp1252", _names(
    "Jean, Marie, Pierre, Michel, André, Philippe, René, Louis, Alain, Jacques, Bernard,"
    "Françoise, Hélène, Renée, Chloé, Léa, Zoé, Anaïs, Noël, Maëlle, Loïc, Jérôme, Stéphane,"
    "Frédéric, Sébastien, Cécile, Agnès, Thérèse, Geneviève, Benoît, Gaëlle, Joël, Inès,"
    "Amélie, Valérie, Céline, Aurélie, Mélanie, Eugène, Clément"), _names(
    "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau, Lefèvre,"
    "Lefèbvre, Fournier, Girard, Bonnet, Dupré, Mercier, Rivière, Lemaître, Lécuyer, Bérenger,"
    "Chrétien, Béranger, Gauthier, Perrin, Roussel, Benoît, Faucher, Lacroix, Noël, Bœuf,"
    "Dubœuf, Ménard, Séguin, Côté, Thibault, Boulanger, Barthélemy, Hébert, Pelletier"), _names(
    "Paris, Marseille, Lyon, Toulouse, Nice, Nantes, Montpellier, Strasbourg, Bordeaux, Lille,"
    "Rennes, Reims, Saint-Étienne, Le Havre, Toulon, Grenoble, Dijon, Angers, Nîmes, Besançon,"
    "Orléans, Mulhouse, Rouen, Caen, Nancy, Béziers, Créteil, Sète, Valenciennes, Montréal,"
    "Québec, Genève, Fréjus, Châlons-en-Champagne, Pontoise, Évry, Colmar, Épinal"))
GERMAN = Language("cp1252", _names(
    "Jürgen, Klaus, Günter, Hans, Jörg, Uwe, Björn, Sören, Lukas, Maximilian, Jonas, Lea,"
    "Sophie, Marie, Jürgen, Käthe, Brigitte, Renate, Ursula, Gisela, Jörn, Anja, Ines, Bärbel,"
    "Hannelore, Dörte, Götz, Margarethe, Günther, Wolfgang"), _names(
    "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann,"
    "Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann,"
    "Braun, Krüger, Hofmann, Hartmann, Lange, Schmitt, Werner, Krause, Köhler, Groß, Weiß,"
    "Jäger, König, Böhm, Vogel, Günther, Fuchs, Lorenz, Möller, Brückner"), _names(
    "Berlin, Hamburg, München, Köln, Frankfurt am Main, Stuttgart, Düsseldorf, Dortmund,"
    "Essen, Leipzig, Bremen, Dresden, Hannover, Nürnberg, Duisburg, Bochum, Wuppertal,"
    "Bielefeld, Bonn, Münster, Mönchengladbach, Osnabrück, Lübeck, Saarbrücken, Göttingen,"
    "Würzburg, Zürich, Wien, Graz, Linz"))
SPANISH = Language("cp1252", _names(
    "José, María, Antonio, Juan, Manuel, Francisco, Jesús, Ángel, Sofía, Lucía, Martín,"
    "Begoña, Íñigo, Álvaro, Andrés, Ramón, Inés, Raúl, Óscar, Rubén, Adrián, Joaquín, Nuria,"
    "Concepción, Mónica, Verónica, Beatriz, Sebastián, Germán, Iván"), _names(
    "García, Rodríguez, González, Fernández, López, Martínez, Sánchez, Pérez, Gómez, Martín,"
    "Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso, Gutiérrez,"
    "Navarro, Torres, Domínguez, Vázquez, Ramos, Gil, Ramírez, Serrano, Blanco, Núñez, Ibáñez,"
    "Peña, Castaño, Suárez, Méndez, Cortés, Calderón, Ordóñez"), _names(
    "Madrid, Barcelona, Valencia, Sevilla, Zaragoza, Málaga, Murcia, Palma, Bilbao, Alicante,"
    "Córdoba, Valladolid, Vigo, Gijón, A Coruña, Vitoria, Granada, Elche, Oviedo, Badalona,"
    "Cádiz, Jaén, Almería, León, Logroño, Cáceres, Ávila, México, Bogotá, Medellín"))
PORTUGUESE = Language("cp1252", _names(
    "João, José, António, Maria, Ana, Luís, Gonçalo, Sebastião, Conceição, Inês, Mónica,"
    "Fábio, Vânia, Sónia, Márcia, Cláudia, Simão, Estêvão, Tomás, Lúcia, Bárbara, Gabriela,"
    "Rúben, Sérgio, Célia, Débora, Flávio, Vítor, Hélder, Patrícia"), _names(
    "Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Jesus, Sousa,"
    "Fernandes, Gonçalves, Gomes, Lopes, Marques, Alves, Almeida, Ribeiro, Pinto, Carvalho,"
    "Magalhães, Guimarães, Conceição, Simões, Brandão, Calçada, Falcão, Leitão, Galvão, Araújo"),
    _names(
    "Lisboa, Porto, Braga, Coimbra, Funchal, Amadora, Setúbal, Évora, Aveiro, Guimarães,"
    "Viseu, Leiria, Faro, Bragança, Portimão, Olhão, São Paulo, Brasília, Belém, Goiânia,"
    "Maceió, São Luís, Florianópolis, Vitória, Niterói, Ribeirão Preto, Cuiabá, Macapá"))
ICELANDIC = Language("cp1252", _names(
    "Jón, Sigurður, Guðmundur, Gunnar, Ólafur, Einar, Kristján, Magnús, Stefán, Jóhann, Björn,"
    "Þórður, Arnþór, Eyþór, Hörður, Þröstur, Guðrún, Anna, Kristín, Sigríður, Margrét, Helga,"
    "Sigrún, Ingibjörg, Jóhanna, María, Katrín, Þórunn, Ásta, Hafdís, Ýr, Bryndís, Ragnheiður"),
    _names(
    "Jónsson, Sigurðsson, Guðmundsson, Gunnarsson, Ólafsson, Einarsson, Kristjánsson,"
    "Magnússon, Stefánsson, Björnsson, Þorsteinsson, Jónsdóttir, Sigurðardóttir,"
    "Guðmundsdóttir, Gunnarsdóttir, Ólafsdóttir, Einarsdóttir, Magnúsdóttir, Þórðardóttir,"
    "Halldórsson, Árnason, Pálsson, Hallgrímsson, Eiríksson, Þórisdóttir"), _names(
    "Reykjavík, Kópavogur, Hafnarfjörður, Akureyri, Reykjanesbær, Garðabær, Mosfellsbær,"
    "Árborg, Akranes, Fjarðabyggð, Ísafjörður, Selfoss, Egilsstaðir, Húsavík, Höfn,"
    "Vestmannaeyjar, Sauðárkrókur, Borgarnes, Hveragerði, Grindavík, Þorlákshöfn"))
ITALIAN = Language("cp1252", _names(
    "Giuseppe, Giovanni, Antonio, Mario, Luigi, Francesco, Niccolò, Nicolò, Lucia, Maria,"
    "Giulia, Chiara, Francesca, Elena, Sara, Martina, Luca, Marco, Andrea, Matteo, Gianluca,"
    "Mosè, Noè, Zaccaria, Raffaele, Pasquale"), _names(
    "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, Bruno,"
    "Gallo, Conti, De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti, Barbieri,"
    "Fontana, Santoro, Mariani, Rinaldi, Caruso, Ferrara, Galli, Martini, Leone, Longo, Gentile,"
    "Nicolò, Cantù"), _names(
    "Roma, Milano, Napoli, Torino, Palermo, Genova, Bologna, Firenze, Bari, Catania, Venezia,"
    "Verona, Messina, Padova, Trieste, Brescia, Parma, Prato, Modena, Reggio Calabria, Forlì,"
    "Cantù, Santhià, Orbetello, Moncalieri, Cefalù, Agrigento, Portofino, Bolzano"))
IRISH = Language("cp1252", _names(
    "Seán, Siobhán, Pádraig, Máire, Niamh, Aoife, Síle, Caoimhe, Ciarán, Eoghan, Órla, Róisín,"
    "Dónal, Séamus, Tomás, Cathal, Éabha, Aisling, Sinéad, Áine, Bríd, Colm, Diarmuid, Méabh,"
    "Màiri, Ùisdean, Seòras, Calum, Iain, Mòrag"), _names(
    "Ó Briain, Ó Súilleabháin, Mac Cárthaigh, Ó Néill, Ó Ceallaigh, Ó Dónaill, Mac Giolla,"
    "Ó Conchúir, Breathnach, Ó Murchú, Mac Mathúna, Ó Sé, Ní Bhriain, Nic Aodha, Ó Gráda,"
    "MacLeòid, MacDhòmhnaill, Caimbeul, Mac an t-Saoir, Ó Ríordáin"), _names(
    "Baile Átha Cliath, Corcaigh, Gaillimh, Luimneach, Port Láirge, Dún Dealgan, Cill Airne,"
    "Trá Lí, Sligeach, Béal Feirste, Inbhir Nis, Steòrnabhagh, Glaschu, Ùig, Dùn Èideann"))
WESTERN = (FRENCH, GERMAN, SPANISH, PORTUGUESE, ICELANDIC, ITALIAN, IRISH)
MIXED = Language("cp1252", *(tuple(n for lang in WESTERN for n in getattr(lang, part))
                             for part in ("first", "last", "cities")))  # fmt: skip
MAC_ROMAN = Language("mac_roman", *(tuple(n for lang in (FRENCH, GERMAN, SPANISH)
                                          for n in getattr(lang, part))
                                    for part in ("first", "last", "cities")))  # fmt: skip

LANGUAGES: dict[str, Language] = {
    "turkish": TURKISH, "czech": CZECH, "polish": POLISH, "lithuanian": LITHUANIAN,
    "latvian": LATVIAN, "estonian": ESTONIAN, "french": FRENCH, "german": GERMAN,
    "spanish": SPANISH, "portuguese": PORTUGUESE, "icelandic": ICELANDIC, "italian": ITALIAN,
    "irish": IRISH, "mixed-western": MIXED, "mac-roman": MAC_ROMAN,
}  # fmt: skip
# Western European files: none may be misread
WESTERN_NAMES = ("french", "german", "spanish", "portuguese", "icelandic", "italian", "irish",
                 "mixed-western")  # fmt: skip


def text_of(language: Language, rows: int, rng: random.Random) -> str:
    """A CSV of `rows` people (email, first name, last name, city), as Excel writes it."""
    lines = ["email,first_name,last_name,city"]
    for i in range(rows):
        first, last = rng.choice(language.first), rng.choice(language.last)
        lines.append(f"p{i}@example.com,{first},{last},{rng.choice(language.cities)}")
    return "\r\n".join(lines) + "\r\n"


def files(language: Language, count: int, seed: int = 1,
          max_rows: int = 40) -> Iterator[str]:  # fmt: skip
    """`count` files of 1 to `max_rows` rows each, the same for the same seed."""
    rng = random.Random(f"{seed}:{language.encoding}:{language.first[0]}")
    for _ in range(count):
        yield text_of(language, rng.randint(1, max_rows), rng)


def outcome(text: str, encoding: str) -> str:
    """"read" (as written), "misread" (stored otherwise) or "refused" for a file."""
    data = text.encode(encoding)
    try:
        codec, errors = detect_encoding(data)
    except CsvFileError:
        return "refused"
    return "read" if data.decode(codec, errors=errors) == text else "misread"


def measure(count: int = 2000, seed: int = 1) -> dict[str, dict[str, int]]:
    """Per language: how many of `count` files are read, misread and refused."""
    found = {}
    for name, language in LANGUAGES.items():
        tally = {"read": 0, "misread": 0, "refused": 0}
        for text in files(language, count, seed):
            tally[outcome(text, language.encoding)] += 1
        found[name] = tally
    return found


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 2000
    seed = int(argv[1]) if len(argv) > 1 else 1
    for name, tally in measure(count, seed).items():
        print(f"{name:14} read {tally['read']:5}  misread {tally['misread']:5}  "
              f"refused {tally['refused']:5}")


if __name__ == "__main__":
    main(sys.argv[1:])
